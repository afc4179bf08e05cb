"""The README stays true: its code parses, its SQL runs, its worker options are the real ones."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


@pytest.mark.parametrize("number", range(len(blocks("python"))))
def test_readme_python_block_parses(number):
    compile(blocks("python")[number], f"README.md python block {number}", "exec")


@pytest.mark.django_db
@pytest.mark.parametrize("number", range(len(blocks("sql"))))
def test_readme_sql_block_runs(number):
    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pgrowlocks")
        for statement in blocks("sql")[number].split(";"):
            code = "\n".join(
                line for line in statement.splitlines() if not line.startswith("--")
            ).strip()
            if code.startswith("CREATE EXTENSION"):
                code = code.replace(
                    "CREATE EXTENSION", "CREATE EXTENSION IF NOT EXISTS"
                )
            if code:
                cursor.execute(code)


def test_readme_lists_every_worker_option():
    out = StringIO()
    with pytest.raises(SystemExit):
        call_command("dpq_worker", "--help", stdout=out)
    options = set(re.findall(r"(--[a-z][a-z-]+)", out.getvalue()))
    options -= {"--help", "--version", "--verbosity", "--settings", "--pythonpath"}
    options -= {"--traceback", "--no-color", "--force-color", "--skip-checks"}
    table = README[README.index("## The worker") : README.index("### Batches")]
    missing = sorted(option for option in options if f"`{option}" not in table)
    assert not missing, f"add {missing} to the worker's options table in README.md"
