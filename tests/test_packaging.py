"""The wheel: an upgrade of django-postgres-queue 1.0.0, typed, the dashboard's needs an extra."""

from __future__ import annotations

import email
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.version import Version

import dpq

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), "."],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    [path] = out.glob("django_postgres_queue-*.whl")
    with zipfile.ZipFile(path) as built:
        yield built


def metadata(wheel: zipfile.ZipFile) -> email.message.Message:
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return email.message_from_bytes(wheel.read(name))


def test_version_is_newer_than_the_original_1_0_0():
    assert Version(dpq.__version__) == Version("2.0.0")
    assert Version(dpq.__version__) > Version("1.0.0")


@pytest.mark.slow
def test_wheel_is_version_2_0_0_of_django_postgres_queue(wheel):
    meta = metadata(wheel)

    assert (meta["Name"], meta["Version"]) == ("django-postgres-queue", "2.0.0")


@pytest.mark.slow
def test_wheel_needs_django_tables2_only_for_the_admin_extra(wheel):
    requires = metadata(wheel).get_all("Requires-Dist")

    assert sorted(r for r in requires if "extra" not in r) == [
        "cronsim>=2.8",
        "django>=5.2",
        "psycopg2-binary>=2.9",
    ]
    assert "django-tables2>=2.7; extra == 'admin'" in requires


@pytest.mark.slow
def test_wheel_ships_py_typed_for_both_packages_and_no_tests(wheel):
    names = wheel.namelist()

    assert {"dpq/py.typed", "dpq_admin/py.typed"} <= set(names)
    assert not [n for n in names if n.startswith(("tests/", "demo_project/"))]


@pytest.mark.slow
def test_wheel_registers_the_pytest_plugin(wheel):
    [name] = [n for n in wheel.namelist() if n.endswith(".dist-info/entry_points.txt")]

    assert "[pytest11]\ndpq = dpq.pytest_plugin" in wheel.read(name).decode()
