"""System checks: DPQ_QUEUE must name a queue; the dashboard needs django_tables2."""

from __future__ import annotations

import sys

import pytest
from django.conf import settings as django_settings
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from dpq.checks import check_queue_setting
from dpq_admin import checks as admin_checks


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
    # None in sys.modules is Python's own way to make an import fail.
    monkeypatch.setitem(sys.modules, "django_tables2", None)
    with without_django_tables2():
        [error] = admin_checks.check_dependencies()

    assert error.id == "dpq_admin.E001"
    assert "pip install django-tables2" in error.hint
    assert '"django_tables2" to INSTALLED_APPS' in error.hint


def test_check_command_fails_without_django_tables2():
    with (
        without_django_tables2(),
        pytest.raises(SystemCheckError, match=r"dpq_admin\.E001"),
    ):
        call_command("check")


def test_check_command_passes_with_the_test_settings():
    call_command("check")
