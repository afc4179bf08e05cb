"""System checks: DPQ_QUEUE must name a queue; the dashboard needs django_tables2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from dpq.checks import check_queue_setting
from dpq_admin import checks as admin_checks

ROOT = Path(__file__).resolve().parents[1]


def test_check_passes_when_dpq_queue_is_unset(settings):
    if hasattr(settings, "DPQ_QUEUE"):
        del settings.DPQ_QUEUE

    assert check_queue_setting() == []


def test_check_passes_when_dpq_queue_names_a_queue(settings):
    settings.DPQ_QUEUE = "tests.seedapp.queue.queue"

    assert check_queue_setting() == []


def test_check_reports_e001_when_dpq_queue_cannot_be_imported(settings):
    settings.DPQ_QUEUE = "tests.no_such_module.queue"

    [error] = check_queue_setting()

    assert error.id == "dpq.E001"
    assert "'tests.no_such_module.queue' cannot be imported" in error.msg
    assert error.hint


def test_check_reports_e001_when_dpq_queue_is_not_a_string(settings):
    settings.DPQ_QUEUE = 42

    [error] = check_queue_setting()

    assert error.id == "dpq.E001"
    assert "dotted path string, got int" in error.msg


def test_check_reports_e002_when_dpq_queue_is_not_a_queue(settings):
    settings.DPQ_QUEUE = "tests.tasks.TASKS"

    [error] = check_queue_setting()

    assert error.id == "dpq.E002"
    assert "is a dict, not a dpq Queue" in error.msg


def test_check_command_fails_on_a_bad_dpq_queue(settings):
    settings.DPQ_QUEUE = "tests.tasks.TASKS"

    with pytest.raises(SystemCheckError, match=r"dpq\.E002"):
        call_command("check")


def test_check_reports_e003_when_the_queue_has_a_bad_schedule(settings):
    settings.DPQ_QUEUE = "tests.badqueues.queue"
    sys.modules.pop("tests.badqueues", None)

    [error] = check_queue_setting()

    assert error.id == "dpq.E003"
    assert "schedule 'record' of queue 'default'" in error.msg
    assert "has 4 fields; it needs five" in error.msg


def test_check_command_fails_on_a_bad_schedule(settings):
    settings.DPQ_QUEUE = "tests.badqueues.queue"
    sys.modules.pop("tests.badqueues", None)

    with pytest.raises(SystemCheckError, match=r"dpq\.E003.*schedule 'record'"):
        call_command("check")


def without_django_tables2():
    return override_settings(
        INSTALLED_APPS=[
            app for app in django_settings.INSTALLED_APPS if app != "django_tables2"
        ]
    )


def test_dashboard_check_passes_with_django_tables2_installed():
    assert admin_checks.check_dependencies() == []


def test_dashboard_check_reports_e001_without_django_tables2_in_installed_apps():
    with without_django_tables2():
        [error] = admin_checks.check_dependencies()

    assert error.id == "dpq_admin.E001"
    assert error.level == checks.ERROR
    assert "'django_tables2' must be in INSTALLED_APPS" in error.msg
    assert error.hint == 'Add "django_tables2" to INSTALLED_APPS.'


def test_dashboard_check_says_pip_install_when_django_tables2_cannot_be_imported(
    monkeypatch,
):
    with without_django_tables2():
        # None in sys.modules is Python's own way to make an import fail (set after the
        # app registry is rebuilt: the dashboard's app would refuse to start).
        monkeypatch.setitem(sys.modules, "django_tables2", None)
        [error] = admin_checks.check_dependencies()

    assert error.id == "dpq_admin.E001"
    assert 'pip install "django-postgres-queue[admin]"' in error.hint
    assert '"django_tables2" to INSTALLED_APPS' in error.hint


def test_check_command_fails_without_django_tables2():
    with (
        without_django_tables2(),
        pytest.raises(SystemCheckError, match=r"dpq_admin\.E001"),
    ):
        call_command("check")


def test_check_command_passes_with_the_test_settings():
    call_command("check")


def test_dashboard_app_refuses_to_start_without_django_tables2_and_says_what_to_install(
    monkeypatch,
):
    import dpq_admin
    from dpq_admin.apps import DpqAdminConfig

    monkeypatch.setitem(sys.modules, "django_tables2", None)

    with pytest.raises(ImproperlyConfigured) as raised:
        DpqAdminConfig("dpq_admin", dpq_admin)

    assert 'pip install "django-postgres-queue[admin]"' in str(raised.value)


@pytest.mark.slow
def test_manage_py_check_without_django_tables2_says_pip_install_the_admin_extra(
    tmp_path,
):
    # The README's order: the dashboard before django_tables2, so its message comes first.
    (tmp_path / "no_tables2_settings.py").write_text(
        "from tests.settings import *  # noqa: F403\n"
        "INSTALLED_APPS = [a for a in INSTALLED_APPS if a != 'django_tables2']\n"
        "INSTALLED_APPS.append('django_tables2')\n"
    )
    script = (
        "import sys; sys.modules['django_tables2'] = None\n"
        "from django.core.management import execute_from_command_line\n"
        "execute_from_command_line(['manage.py', 'check'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "no_tables2_settings",
            "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        },
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 1
    assert 'pip install "django-postgres-queue[admin]"' in done.stderr
