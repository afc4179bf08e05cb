"""Take the README's screenshots of the dashboard: docs/dashboard.png, docs/job.png,
docs/failed-jobs.png, docs/job-waiting.png, docs/health.png, docs/job-edit.png,
docs/paused.png (the dashboard with queue "mail" paused), and docs/demo.png from the
running demo.

    DATABASE_URL=postgres://user@host/dpq_screens .venv/bin/python scripts/screenshots.py

``make screenshots`` runs it against a database of its own. The script migrates that
database, REPLACES every job in it with a small example queue (queued, delayed, failed and
one job held by a worker-named connection), serves the admin on a local port and
photographs it with Debian's chromium through Playwright (apt-get install chromium).

docs/demo.png, the Quick start's picture, comes from the real demo instead: the script
creates a scratch database next to that one (its name plus ``_demo``, on the same server),
runs ``demo_project/run_demo.py`` on it, waits until jobs are running, delayed and failed,
photographs the dashboard as the demo user, stops the demo with SIGINT as Ctrl-C would,
and drops the scratch database.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
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
VIEWPORT = {"width": 1280, "height": 900}
USERNAME, PASSWORD = "screens", "screens-only-password"
# The demo (demo_project/run_demo.py): its login, and how long to wait for it to start
# and to show running, delayed and failed jobs, and to stop after SIGINT.
DEMO_SCRIPT = ROOT / "demo_project" / "run_demo.py"
DEMO_USERNAME, DEMO_PASSWORD = "demo", "demo"
DEMO_SUFFIX = "_demo"
DEMO_READY_TIMEOUT = 300
DEMO_STOP_TIMEOUT = 30
WORKER = "dpq:default:web-1:4711"

TRACEBACK = """Traceback (most recent call last):
  File "/srv/shop/dpq/queue.py", line 431, in process_job
    retval = self.run_job(job)
  File "/srv/shop/shop/tasks.py", line 58, in sync_stock
    response.raise_for_status()
  File "/srv/shop/.venv/lib/python3.11/site-packages/requests/models.py", line 1021, in raise_for_status
    raise HTTPError(http_error_msg, response=self)
requests.exceptions.HTTPError: 503 Server Error: Service Unavailable for url: https://erp.example.com/api/stock
"""


def configure() -> None:
    import dj_database_url
    from django.conf import settings

    if not os.environ.get("DATABASE_URL"):
        sys.exit("DATABASE_URL is not set: run `make screenshots`, which sets it.")
    sys.path.insert(0, str(ROOT))
    settings.configure(
        DEBUG=False,
        SECRET_KEY="screenshots-only",
        ALLOWED_HOSTS=["*"],
        USE_TZ=True,
        TIME_ZONE="UTC",
        DATABASES={"default": dj_database_url.parse(os.environ["DATABASE_URL"])},
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.staticfiles",
            "django_tables2",
            "dpq",
            "dpq_admin",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        ROOT_URLCONF="tests.urls",
        STATIC_URL="/static/",
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
    )
    import django

    django.setup()


def fill_queue() -> int:
    """Replace the jobs with an example queue; return the id of the failed job to show."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from dpq.models import Job, JobStart

    Job.objects.all().delete()
    JobStart.objects.all().delete()
    now = timezone.now()
    minutes = datetime.timedelta(minutes=1)
    jobs = [
        Job(
            task="send_welcome_email",
            queue="mail",
            args={"user_id": 4200 + n},
            execute_at=now - (9 - n) * minutes,
            priority=5,
        )
        for n in range(6)
    ]
    jobs += [
        Job(
            task="resize_image",
            queue="default",
            args={"path": f"uploads/{n}.jpg", "width": 800},
            execute_at=now - (n + 1) * minutes,
        )
        for n in range(9)
    ]
    jobs += [
        Job(
            task="sync_stock",
            queue="default",
            args={"sku": f"SKU-{n:04}"},
            execute_at=now + (30 + n) * minutes,
        )
        for n in range(4)
    ]
    failures = [
        Job(
            task="sync_stock",
            queue="default",
            attempts=3,
            last_error=TRACEBACK,
            args={"sku": "SKU-0042", "api_token": "sk_live_123", "warehouse": "north"},
            failed_at=now - 12 * minutes,
            execute_at=now - 20 * minutes,
        ),
        Job(
            task="charge_card",
            queue="billing",
            attempts=1,
            last_error="Traceback (most recent call last):\n  ...\nshop.payments.CardDeclined: card declined\n",
            args={"order": 1881, "amount": "49.90", "authorization": "Bearer abc"},
            failed_at=now - 40 * minutes,
            execute_at=now - 41 * minutes,
        ),
        Job(
            task="send_welcome_email",
            queue="mail",
            attempts=3,
            last_error="Traceback (most recent call last):\n  ...\nsmtplib.SMTPRecipientsRefused: {'bounce@example.com': (550, b'No such user')}\n",
            args={"user_id": 17, "email": "bounce@example.com"},
            failed_at=now - 3 * minutes,
            execute_at=now - 9 * minutes,
        ),
    ]
    created = Job.objects.bulk_create(jobs + failures)
    User.objects.filter(username=USERNAME).delete()
    User.objects.create_superuser(USERNAME, password=PASSWORD)
    return created[len(jobs)].pk


class Worker(threading.Thread):
    """Connections named like a dpq worker: two threads each holding a claimed job, one
    listening, until ``stop`` is set."""

    def __init__(self, thread: str, claim: bool) -> None:
        super().__init__(daemon=True)
        self.thread_name, self.claim = thread, claim
        self.ready, self.stop = threading.Event(), threading.Event()

    def run(self) -> None:
        from django.db import connection, transaction

        from dpq import sql
        from dpq.queue import AtLeastOnceQueue

        try:
            name = f"{WORKER}:{self.thread_name}"
            sql.execute("default", sql.SET_APPLICATION_NAME, {"name": name})
            with transaction.atomic():
                if self.claim:
                    queue = AtLeastOnceQueue(
                        tasks={"resize_image": print}, name="default"
                    )
                    queue.claim()
                self.ready.set()
                self.stop.wait(120)
        finally:
            self.ready.set()
            connection.close()


def serve() -> object:
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread

    server = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
    server.daemon = True
    server.start()
    server.is_ready.wait()
    if server.error:
        raise server.error
    return server


def open_logged_in(playwright: Any, base: str, username: str, password: str) -> tuple:
    """Launch Debian's chromium and log in to the admin at ``base``; return browser, page."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/")
    return browser, page


def photograph(base: str, failed_id: int) -> None:
    from playwright.sync_api import sync_playwright

    DOCS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser, page = open_logged_in(playwright, base, USERNAME, PASSWORD)
        from dpq.models import Job

        # Claimed last: not held by one of the example workers.
        waiting = (
            Job.objects.queued().order_by("priority", "-execute_at", "-id").first()
        )
        for path, name in (
            ("/admin/dpq/job/", "dashboard.png"),
            (f"/admin/dpq/job/{failed_id}/", "job.png"),
            ("/admin/dpq/job/failed/", "failed-jobs.png"),
            (f"/admin/dpq/job/{waiting.pk}/", "job-waiting.png"),
            ("/admin/dpq/job/health/", "health.png"),
            (f"/admin/dpq/job/{failed_id}/edit/", "job-edit.png"),
        ):
            page.goto(base + path)
            page.screenshot(path=str(DOCS / name), full_page=True)
            print(f"wrote docs/{name}")
        from dpq import pauses

        pauses.pause_queue("mail", by="admin")
        try:
            page.goto(base + "/admin/dpq/job/")
            page.screenshot(path=str(DOCS / "paused.png"), full_page=True)
            print("wrote docs/paused.png")
        finally:
            pauses.resume_queue("mail")
        browser.close()


# --- docs/demo.png: the running demo ---------------------------------------------------


def demo_database_url(url: str) -> tuple[str, str]:
    """The scratch database's name and URL: DATABASE_URL's name plus DEMO_SUFFIX."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/") + DEMO_SUFFIX
    return name, urlunsplit(parts._replace(path="/" + name))


def admin_database(url: str, sql: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) on DATABASE_URL's own database."""
    from dpq import driver

    connection = driver.connect(url)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_counts(page: Any) -> dict[str, int | None]:
    """The dashboard's totals; None for one that is missing or not a number."""
    counts: dict[str, int | None] = {}
    for state in ("queued", "running", "delayed", "failed"):
        node = page.query_selector(f"#dpq-count-{state}")
        text = node.inner_text().replace(",", "").strip() if node else ""
        counts[state] = int(text) if text.isdigit() else None
    return counts


def demo_is_lively(counts: dict[str, int | None]) -> bool:
    return all((counts[state] or 0) >= 1 for state in ("running", "delayed", "failed"))


def wait_for_http(url: str, demo: subprocess.Popen[bytes], deadline: float) -> None:
    while True:
        if demo.poll() is not None:
            raise RuntimeError(f"the demo exited with status {demo.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers, if only with a redirect to the login
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} does not answer after {DEMO_READY_TIMEOUT} s")
        time.sleep(0.5)


def photograph_demo(base: str, demo: subprocess.Popen[bytes]) -> None:
    """Log in to the demo, wait until it has jobs running, delayed and failed, and take
    docs/demo.png of the dashboard."""
    from playwright.sync_api import sync_playwright

    deadline = time.monotonic() + DEMO_READY_TIMEOUT
    wait_for_http(f"{base}/admin/login/", demo, deadline)
    with sync_playwright() as playwright:
        browser, page = open_logged_in(playwright, base, DEMO_USERNAME, DEMO_PASSWORD)
        while True:
            page.goto(f"{base}/admin/dpq/job/")
            counts = demo_counts(page)
            if demo_is_lively(counts):
                break
            if demo.poll() is not None:
                raise RuntimeError(f"the demo exited with status {demo.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the demo's dashboard does not show running, delayed and failed "
                    f"jobs after {DEMO_READY_TIMEOUT} s: {counts}"
                )
            time.sleep(2)
        page.screenshot(path=str(DOCS / "demo.png"), full_page=True)
        print(f"wrote docs/demo.png ({counts})")
        browser.close()


def stop_demo(demo: subprocess.Popen[bytes]) -> None:
    """SIGINT to the demo's process group, as Ctrl-C would; kill it if it lingers."""
    if demo.poll() is None:
        try:
            os.killpg(demo.pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    try:
        demo.wait(timeout=DEMO_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        print(f"the demo did not stop within {DEMO_STOP_TIMEOUT} s; killing it")
    # Whatever is left in its group goes too (the demo's own children, in groups of
    # their own, get SIGTERM when it dies).
    try:
        os.killpg(demo.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    demo.wait()


def take_demo_screenshot() -> None:
    url = os.environ["DATABASE_URL"]
    name, demo_url = demo_database_url(url)
    drop = f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)"
    admin_database(url, drop)  # left over from a run that was killed
    admin_database(url, f"CREATE DATABASE {quote_ident(name)}")
    port = free_port()
    log = tempfile.TemporaryFile()
    try:
        demo = subprocess.Popen(
            [sys.executable, str(DEMO_SCRIPT), "--port", str(port)],
            cwd=ROOT,
            env={**os.environ, "DATABASE_URL": demo_url},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
        try:
            photograph_demo(f"http://127.0.0.1:{port}", demo)
        except BaseException:
            stop_demo(demo)
            log.seek(0)
            tail = log.read().decode(errors="replace").splitlines()[-30:]
            print("last lines of the demo's output:", *tail, sep="\n  ")
            raise
        stop_demo(demo)
        print(f"the demo stopped with status {demo.returncode}")
    finally:
        log.close()
        admin_database(url, drop)


def main() -> None:
    if not os.path.exists(CHROMIUM):
        sys.exit(f"{CHROMIUM} is missing: apt-get install chromium")
    # Playwright's sync API runs an event loop in this thread; the ORM calls here are
    # synchronous on purpose.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    configure()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    failed_id = fill_queue()
    workers = [Worker("t1", True), Worker("t2", True), Worker("listen", False)]
    for worker in workers:
        worker.start()
        worker.ready.wait(10)
    server = serve()
    try:
        photograph(f"http://127.0.0.1:{server.port}", failed_id)
    finally:
        for worker in workers:
            worker.stop.set()
        for worker in workers:
            worker.join(10)
        server.terminate()
    from django.db import connections

    connections.close_all()
    take_demo_screenshot()


if __name__ == "__main__":
    main()
