"""The demo project's own tests (demo_project/demo/tests.py, which use dpq.testing) pass
under its ``manage.py test``, in a subprocess with a test database of their own."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parents[2] / "demo_project"


@pytest.mark.slow
def test_demo_project_tests_pass_under_manage_py_test():
    base = os.environ.get("DPQ_TEST_DB_NAME", "test_dpq")
    parts = urllib.parse.urlsplit(os.environ["DATABASE_URL"])
    # manage.py test creates test_<name> from the postgres database: <name> need not exist.
    url = urllib.parse.urlunsplit(parts._replace(path=f"/{base}_demo_project"))
    env = {**os.environ, "DATABASE_URL": url}
    env.pop("DJANGO_SETTINGS_MODULE", None)

    done = subprocess.run(
        [sys.executable, "manage.py", "test", "--noinput", "demo"],
        cwd=DEMO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )

    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Ran 5 tests" in output
    assert "being accessed by other users" not in output
