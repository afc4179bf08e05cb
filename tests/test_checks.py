"""System checks: DPQ_QUEUE must name a queue."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from dpq.checks import check_queue_setting


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
