"""Rules the library's source keeps: no writes to Django's private connection state or to
any private attribute of another object (Django's above all), and no driver imported outside
dpq/driver.py (a project runs psycopg 3 or psycopg2, not both)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("dpq", "dpq_admin")

# Django's transaction bookkeeping on a DatabaseWrapper: only its own transaction API may
# change it. Assigning it (or editing its lists) desynchronises Django from the server.
PRIVATE = (
    "in_atomic_block|atomic_blocks|commit_on_exit|needs_rollback|run_on_commit|"
    "closed_in_transaction|savepoint_ids|savepoint_state|_savepoint_allowed"
)
PRIVATE_WRITES = [
    re.compile(rf"\.({PRIVATE})\s*(\+|-)?=(?!=)"),
    re.compile(rf"\.({PRIVATE})\.(append|extend|insert|pop|remove|clear)\("),
    re.compile(rf"\bsetattr\([^,]+,\s*['\"]({PRIVATE})['\"]"),
]
# A private attribute (a leading underscore) of an object other than the code's own self or
# cls, written by assignment or setattr() with its name spelled out, and any
# object.__setattr__ (the way past a frozen dataclass, such as Django's TaskResult).
OTHERS_PRIVATE_WRITES = [
    re.compile(
        r"(?<![\w.])(?!(?:self|cls)\._)\w+(\.\w+|\(\))*\._(?!_\w+__(?!\w))\w+\s*(\+|-|\||&)?=(?!=)"
    ),
    re.compile(r"\bsetattr\([^,]+,\s*['\"]_"),
    re.compile(r"\bobject\.__setattr__\("),
]
DRIVER_IMPORT = re.compile(r"^\s*(import|from)\s+psycopg2?\b", re.M)
DRIVER_MODULE = Path("dpq/driver.py")


def source_lines() -> list[tuple[str, int, str]]:
    lines = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                lines.append((str(relative), number, line))
    return lines


def test_source_never_assigns_djangos_private_connection_attributes():
    found = [
        f"{path}:{number}: {line.strip()}"
        for path, number, line in source_lines()
        if any(pattern.search(line) for pattern in PRIVATE_WRITES)
    ]

    assert not found, (
        "these lines change Django's private transaction state; use transaction.atomic(), "
        "set_rollback() or on_commit() instead:\n" + "\n".join(found)
    )


def test_source_never_assigns_a_private_attribute_of_another_object():
    found = [
        f"{path}:{number}: {line.strip()}"
        for path, number, line in source_lines()
        if any(pattern.search(line) for pattern in OTHERS_PRIVATE_WRITES)
    ]

    assert not found, (
        "these lines assign a private attribute of an object that is not their own (Django's "
        "TaskResult._return_value, say), or go past a frozen dataclass with "
        "object.__setattr__; use the object's public API, or a subclass with a field of "
        "its own:\n" + "\n".join(found)
    )


def test_source_imports_a_driver_only_in_dpq_driver():
    found = [
        f"{path}:{number}: {line.strip()}"
        for path, number, line in source_lines()
        if DRIVER_IMPORT.match(line) and Path(path) != DRIVER_MODULE
    ]

    assert not found, (
        "these lines import psycopg2 or psycopg directly, which fails in a project that runs "
        "the other driver; use what dpq/driver.py exposes (add it there if missing):\n"
        + "\n".join(found)
    )


def test_source_rules_find_what_they_look_for():
    # The patterns themselves: a rule that matches nothing would pass forever.
    bad = [
        "connection.needs_rollback = True",
        "wrapper.in_atomic_block=False",
        "conn.savepoint_ids.append(sid)",
        "setattr(connection, 'run_on_commit', [])",
    ]
    good = ["if connection.needs_rollback == True:", "x = connection.in_atomic_block"]

    assert all(any(p.search(line) for p in PRIVATE_WRITES) for line in bad)
    assert not any(any(p.search(line) for p in PRIVATE_WRITES) for line in good)
    others_bad = [
        "result._return_value = value",
        "task_result._return_value=5",
        "self.result._return_value = value",
        "get_result()._return_value = 1",
        "connection._savepoint_allowed |= True",
        "setattr(result, '_return_value', value)",
        'setattr(result, "_return_value", value)',
        'object.__setattr__(result, "_return_value", value)',
        "object.__setattr__(self, 'status', status)",
    ]
    others_good = [
        "self._pending = []",
        "waiting, self._pending = self._pending, []",
        "cls._instances = {}",
        "value = result._return_value",
        "if job._state == state:",
        "setattr(connection, _PREPARED_CLAIM, None)",
        "job.task_attempt = attempt",
        "inner.__name__ = fn.__name__",
    ]
    assert all(
        any(p.search(line) for p in OTHERS_PRIVATE_WRITES) for line in others_bad
    )
    assert not any(
        any(p.search(line) for p in OTHERS_PRIVATE_WRITES) for line in others_good
    )
    assert DRIVER_IMPORT.match("import psycopg2.extras")
    assert DRIVER_IMPORT.match("    from psycopg import sql")
    assert not DRIVER_IMPORT.match("from psycopg_pool import ConnectionPool")


# A module a newcomer reads in one sitting; migrations are generated and exempt.
MAX_MODULE_LINES = 400


def test_no_module_is_longer_than_a_reader_takes_in():
    long = [
        f"{path.relative_to(ROOT)}: {count} lines"
        for package in (*PACKAGES, "dpq_scheduler")
        for path in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in path.parts
        and (count := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not long, (
        f"split these modules by responsibility (at most {MAX_MODULE_LINES} lines): {long}"
    )
