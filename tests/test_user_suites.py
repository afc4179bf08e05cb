"""A project's own tests that enqueue and run jobs pass under manage.py test and pytest-django.

Each suite runs in a subprocess with a test database of its own, created and dropped there:
a connection Django does not know about would make dropping it fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Names of their own, after this run's test database, so concurrent runs do not share them.
BASE_NAME = os.environ.get("DPQ_TEST_DB_NAME", "test_dpq")


def run(argv: list[str], db_name: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DPQ_TEST_DB_NAME": db_name,
        "PYTHONPATH": str(ROOT),
    }
    return subprocess.run(
        argv,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_manage_py_test_runs_a_testcase_that_runs_jobs():
    done = run(
        [sys.executable, "-m", "django", "test", "--noinput", "tests.usersuite.tests"],
        f"{BASE_NAME}_user_django",
    )

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Ran 6 tests" in output
    assert "being accessed by other users" not in output


@pytest.mark.slow
def test_pytest_django_runs_tests_that_run_jobs():
    done = run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-o",
            "python_files=pytest_cases.py",
            "-W",
            "error",
            "tests/usersuite/pytest_cases.py",
        ],
        f"{BASE_NAME}_user_pytest",
    )

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "4 passed" in output
    assert "being accessed by other users" not in output
    assert "warning" not in output.lower()
