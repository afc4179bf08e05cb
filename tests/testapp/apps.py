from __future__ import annotations

import os

from django.apps import AppConfig


class TestappConfig(AppConfig):
    name = "tests.testapp"
    label = "testapp"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Worker subprocesses of tests/worker/test_outcomes.py: every dpq signal's receiver raises.
        if os.environ.get("DPQ_TEST_RAISING_RECEIVERS"):
            from tests import receivers

            receivers.connect_raising_receivers()
        # DPQ_TEST_THREAD_CONNECT_DELAY=SECONDS: a worker thread's connection opens that late.
        if os.environ.get("DPQ_TEST_THREAD_CONNECT_DELAY"):
            from tests import receivers

            receivers.delay_worker_thread_connections(
                float(os.environ["DPQ_TEST_THREAD_CONNECT_DELAY"])
            )
