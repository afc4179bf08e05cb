"""Fixtures of the dashboard tests: users with given permissions, a job held by a worker."""

from __future__ import annotations

import os
import threading

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection, transaction
from django.urls import reverse

from dpq import sql
from dpq.models import Job
from tests.conftest import wait_until

WORKER_NAME = "dpq:default:testhost:4242:t1"


def url(view: str, *args) -> str:
    return reverse(f"admin:dpq_job_{view}", args=args)


@pytest.fixture
def make_staff(db):
    """Factory: a staff user with the given ``dpq`` permissions (codenames)."""

    def make(*codenames: str, username: str = "staff") -> User:
        user = User.objects.create_user(
            username, is_staff=True
        )  # no password: force_login
        perms = Permission.objects.filter(
            content_type__app_label="dpq", codename__in=codenames
        )
        assert perms.count() == len(codenames), "unknown permission codename"
        user.user_permissions.add(*perms)
        return user

    return make


@pytest.fixture
def operator_client(client, make_staff):
    """A staff user who may view, requeue and delete jobs."""
    client.force_login(
        make_staff("view_job", "requeue_job", "delete_job", username="operator")
    )
    return client


@pytest.fixture
def viewer_client(client, make_staff):
    client.force_login(make_staff("view_job", username="viewer"))
    return client


class HeldJob:
    """A job row locked by another connection, named like a worker thread, inside an open
    transaction: the row stays visible and locked until ``release()``. ``take`` locks it
    (a claim, or SELECT ... FOR UPDATE) and returns the job."""

    def __init__(self, take, application_name: str = WORKER_NAME) -> None:
        self.take = take
        self.application_name = application_name
        self.claimed = threading.Event()
        self.release_event = threading.Event()
        self.job = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            sql.execute(
                "default", sql.SET_APPLICATION_NAME, {"name": self.application_name}
            )
            with transaction.atomic():
                self.job = self.take()
                self.claimed.set()
                self.release_event.wait(30)
        except BaseException as exc:  # reported to the test through self.error
            self.error = exc
            self.claimed.set()
        finally:
            connection.close()

    def start(self) -> HeldJob:
        self.thread.start()
        wait_until(self.claimed.is_set, timeout=10)
        if self.error:
            raise self.error
        return self

    def release(self) -> None:
        self.release_event.set()
        self.thread.join(10)


@pytest.fixture
def hold_job(queue):
    """Factory: ``hold_job()`` claims the next ready job on a worker-named connection."""
    held: list[HeldJob] = []

    def hold(application_name: str = WORKER_NAME) -> HeldJob:
        holder = HeldJob(lambda: queue.claim()[0], application_name).start()
        held.append(holder)
        return holder

    yield hold
    for holder in held:
        holder.release()


@pytest.fixture
def lock_job():
    """Factory: ``lock_job(job)`` holds the job's row with SELECT ... FOR UPDATE on a
    worker-named connection, in any state (a claim takes only ready jobs)."""
    held: list[HeldJob] = []

    def lock(job: Job) -> HeldJob:
        holder = HeldJob(lambda: Job.objects.select_for_update().get(pk=job.pk)).start()
        held.append(holder)
        return holder

    yield lock
    for holder in held:
        holder.release()


@pytest.fixture
def no_lock_wait(transactional_db):
    """Make any wait for a lock on the test's connection fail within seconds, not hang."""
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '2s'")
    yield
    with connection.cursor() as cursor:
        cursor.execute("RESET lock_timeout")


@pytest.fixture
def without_pgrowlocks(db):
    """Drop pgrowlocks inside the test's transaction (rolled back afterwards)."""
    with connection.cursor() as cursor:
        cursor.execute("DROP EXTENSION IF EXISTS pgrowlocks")


# --- Browser tests ---------------------------------------------------------------------------

# Playwright's sync API runs an event loop in the test thread; Django refuses ORM calls from a
# thread with a running loop unless told this is intended.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "a-browser-password"


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright; skipped when it is not installed."""
    if not os.path.exists(CHROMIUM):
        message = f"{CHROMIUM} is missing: apt-get install chromium"
        if os.environ.get("DPQ_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    """A fresh browser tab that records every JavaScript dialog in ``page.dialogs``."""
    context = browser.new_context()
    tab = context.new_page()
    tab.dialogs = []

    def record(dialog) -> None:
        tab.dialogs.append(dialog.message)
        dialog.dismiss()

    tab.on("dialog", record)
    yield tab
    context.close()


@pytest.fixture
def logged_in(page, live_server, transactional_db):
    """Log an operator (view, requeue, delete) in through the admin's login form."""
    user = User.objects.create_user("operator", password=PASSWORD, is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="dpq",
            codename__in=["view_job", "requeue_job", "delete_job"],
        )
    )
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "operator")
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    return page
