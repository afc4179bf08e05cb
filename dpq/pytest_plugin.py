"""pytest fixtures for testing code that uses dpq: loaded through the ``pytest11`` entry point.

``dpq_run_jobs`` and ``dpq_assert_enqueued`` are dpq.testing's ``run_jobs`` and
``assert_enqueued``, with database access (pytest-django's ``db``) for the test that asks for
them; ``dpq_enqueued_jobs`` is ``enqueued_jobs``. Nothing is imported from Django until a
fixture is used, so the plugin costs nothing in projects that do not use them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


@pytest.fixture
def dpq_run_jobs(db: None) -> Callable[..., Any]:
    """``dpq_run_jobs(queue, ...)``: run what the test enqueued, inside its transaction."""
    from dpq import testing

    return testing.run_jobs


@pytest.fixture
def dpq_assert_enqueued(db: None) -> Callable[..., Any]:
    """``dpq_assert_enqueued("task", args=..., queue=..., priority=..., execute_at=...)``."""
    from dpq import testing

    return testing.assert_enqueued


@pytest.fixture
def dpq_enqueued_jobs(db: None) -> Callable[..., Any]:
    """``dpq_enqueued_jobs(queue=None)``: the jobs waiting to run, oldest first."""
    from dpq import testing

    return testing.enqueued_jobs
