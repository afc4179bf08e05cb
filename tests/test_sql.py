"""Every statement in dpq.sql parses and plans, and the claim stays on its index at scale."""

from __future__ import annotations

import datetime
import json
import re

import pytest
from django.db import connection

from dpq import sql

NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)

# A dummy value of the right type for each placeholder name a statement may use. A statement
# that brings a new name fails test_every_placeholder_has_a_dummy_value until one is added.
DUMMY_PARAMS = {
    "queue": "default",
    "exclude_ids": [1, 2],
    "limit": 1,
    "ids": [1, 2],
    "solo": True,
    "worker": "host:1",
    "id": 1,
    "created_at": NOW,
    "execute_at": NOW,
    "give_up": False,
    "retry_in": 1.5,
    "priority": 0,
    "task": "noop",
    "args": "{}",
    "attempts": 1,
    "last_error": "Traceback ...",
    "channel": "dpq-tests",
    "execute_ats": [NOW, None],
    "priorities": [0, 1],
    "tasks": ["noop", "noop"],
    "reset_attempts": False,
    "name": "dpq:test",
    "running_ids": [1],
    "table_name": "dpq_job",
    "done_ids": [1],
    "started_ids": [1, 2],
    "starts": [1, 0],
    "claim_xids": [7, None],
    "held_by": [5, 0],
    "created_ats": [NOW, NOW],
    "queues": ["default", "default"],
    "last_errors": [None, "Traceback ..."],
    "failed_ats": [None, None],
    "clear_start": True,
    "lock_space": 1,
    "lock_key": 2,
    "lock_keys": [2, 3],
    "now": NOW,
    "names": ["noop", "record"],
    "expressions": ["@daily", "every 5 minutes"],
    "zones": ["UTC", "Europe/Paris"],
    "due_at": NOW,
    "next_due_at": NOW,
    "job_id": 1,
    "paused": True,
    "backend": "default",
    "queue_name": "default",
    "task_path": "tests.tasks_framework.tasks.noop",
    "kwargs": "{}",
    "status": "SUCCESSFUL",
    "return_value": "null",
    "error": "[]",
    "worker_ids": '["host:1:t1"]',
    "enqueued_at": NOW,
    "started_at": NOW,
    "finished_at": NOW,
    "cutoff": NOW,
    "paused_by": "operator",
    "count_limit": 100001,
    "minutes": [NOW, NOW],
    "done": [1, 0],
    "failed": [0, 1],
}

# Placeholders whose type depends on the statement.
STATEMENT_PARAMS = {
    "INSERT_JOBS": {"args": ["{}", '{"a": 1}']},
    "RECORD_JOB_STARTS": {"solo": [1, 0]},
    "PUT_BACK_JOBS_UNCHANGED": {"args": ["{}", "{}"], "attempts": [0, 1]},
    "UPSERT_SCHEDULES": {"args": ["{}", "{}"]},
    "RECORD_TASK_ATTEMPT": {"args": "[]"},
    "RECORD_THROUGHPUT": {"queues": ["default", "other"]},
}


def is_utility(text: str) -> bool:
    """A SET has no plan (EXPLAIN refuses it): such statements are executed instead."""
    return text.lstrip().upper().startswith("SET ")


# Statements that need an extension the test database may lack.
NEEDS_EXTENSION = {"RUNNING_JOBS": "pgrowlocks", "CREATE_PGROWLOCKS_EXTENSION": None}

# Upper-case strings in dpq.sql that are not statements.
NOT_STATEMENTS = {
    "START_TABLE",
    "SCHEDULE_TABLE",
    "LAST_SCHEDULED_TABLE",
    "TASK_RESULT_TABLE",
    "PAUSE_TABLE",
    "PAUSE_CHANNEL",
    "THROUGHPUT_TABLE",
    "DEFAULT_DB_ALIAS",
}

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def statements() -> list[str]:
    return sorted(
        name
        for name, value in vars(sql).items()
        if name.isupper()
        and isinstance(value, str)
        and not name.startswith("_")
        and name not in NOT_STATEMENTS
    )


def params_for(name: str) -> dict:
    text = getattr(sql, name)
    wanted = set(PLACEHOLDER.findall(text))
    return {
        key: STATEMENT_PARAMS.get(name, {}).get(key, DUMMY_PARAMS.get(key))
        for key in wanted
    }


def test_sql_module_has_statements():
    assert {"CLAIM_JOBS", "INSERT_JOB", "INSERT_JOBS", "REQUEUE_JOBS"} <= set(
        statements()
    )


@pytest.mark.parametrize("name", statements())
def test_every_placeholder_has_a_dummy_value(name):
    missing = set(PLACEHOLDER.findall(getattr(sql, name))) - set(DUMMY_PARAMS)
    assert not missing, f"add dummy values for {sorted(missing)} to DUMMY_PARAMS"


@pytest.mark.django_db
@pytest.mark.parametrize("name", statements())
def test_statement_plans(name):
    with connection.cursor() as cursor:
        if name in NEEDS_EXTENSION:
            extension = NEEDS_EXTENSION[name]
            if extension is None:
                return  # creating an extension has no plan; the dashboard's tests run it
            cursor.execute("SELECT 1 FROM pg_extension WHERE extname = %s", [extension])
            if cursor.fetchone() is None:
                cursor.execute(f"CREATE EXTENSION {extension}")
        text = sql.render(getattr(sql, name))
        if is_utility(text) or "SAVEPOINT" in text:
            # SET and savepoints have no plan: run them (inside the test's transaction).
            cursor.execute(text, params_for(name))
        else:
            cursor.execute("EXPLAIN " + text, params_for(name))
            assert cursor.fetchall()


@pytest.mark.django_db
@pytest.mark.parametrize("channel", ["dpq-tests", 'my-queue"; DROP TABLE canary; --'])
def test_listen_and_unlisten_statements_run(channel):
    with connection.cursor() as cursor:
        cursor.execute(sql.listen_statement(channel, cursor.cursor))
        cursor.execute(sql.unlisten_statement(channel, cursor.cursor))


def test_render_quotes_the_table_name():
    rendered = sql.render(sql.CLAIM_JOBS, job_table="odd table")

    assert '"odd table"' in rendered
    assert '"dpq_jobstart"' in rendered
    assert "{" not in rendered.replace("{}", "")


# --- The claim's plan on a big table ------------------------------------------------------


def _plan_nodes(plan: dict):
    yield plan
    for child in plan.get("Plans", []):
        yield from _plan_nodes(child)


def _reads_job_table(plan: dict) -> bool:
    """Whether rows of dpq_job flow into this node (its CTEs and InitPlans aside)."""
    inputs = [
        child
        for child in plan.get("Plans", [])
        if child.get("Parent Relationship") not in ("InitPlan", "SubPlan")
    ]
    return plan.get("Relation Name") == "dpq_job" or any(map(_reads_job_table, inputs))


@pytest.fixture
def big_job_table(django_db_blocker):
    """200,000 queued + 200,000 delayed + 20,000 failed jobs over three queues, analyzed."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO dpq_job (created_at, execute_at, priority, task, args, queue,
                                 attempts, last_error, failed_at)
            SELECT now(),
                   CASE WHEN n % 21 < 10 THEN now() - make_interval(secs => n)
                        ELSE now() + make_interval(secs => n) END,
                   n % 5, 'noop', '{}', 'q' || (n % 3), 0, '',
                   CASE WHEN n % 21 = 20 THEN now() END
            FROM generate_series(1, 420000) AS n
            """
        )
        cursor.execute("ANALYZE dpq_job")
        cursor.execute(
            "SELECT count(*) FILTER (WHERE failed_at IS NULL AND execute_at <= now()),"
            "       count(*) FILTER (WHERE failed_at IS NULL AND execute_at > now()),"
            "       count(*) FILTER (WHERE failed_at IS NOT NULL) FROM dpq_job"
        )
        return cursor.fetchone()


def explain_claim(cursor, name: str, limit: int) -> str:
    if name == "prepared":
        # The plan a worker's prepared claim settles on after its first runs: the generic one.
        prepare, execute = sql.prepared_claim()
        cursor.execute(prepare)
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        statement = execute
    else:
        statement = sql.render(getattr(sql, name))
    cursor.execute(
        "EXPLAIN (FORMAT JSON) " + statement,
        {"queue": "q1", "exclude_ids": [], "limit": limit},
    )
    return cursor.fetchone()[0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "limit"), [("CLAIM_JOB", 1), ("prepared", 1), ("CLAIM_JOBS", 100)]
)
def test_claim_plan_uses_the_claim_index_on_a_big_table(big_job_table, name, limit):
    assert big_job_table == (200_000, 200_000, 20_000)
    with connection.cursor() as cursor:
        raw = explain_claim(cursor, name, limit)
        if name == "prepared":
            cursor.execute("DEALLOCATE ALL")
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    nodes = list(_plan_nodes(plan))

    job_scans = [n for n in nodes if n.get("Relation Name") == "dpq_job"]
    assert any(n.get("Index Name") == "dpq_job_claim_idx" for n in job_scans), raw
    assert not [n for n in job_scans if n["Node Type"] == "Seq Scan"], raw
    # The only Sort allowed orders the few claimed rows, never rows read from dpq_job
    # (an Incremental Sort of them counts too).
    assert not [
        n for n in nodes if n["Node Type"].endswith("Sort") and _reads_job_table(n)
    ], raw


@pytest.mark.django_db
def test_queue_counts_walk_indexes_on_a_big_table(big_job_table):
    """dpq_status's counts: no pass over the table, each count stopped at its limit."""
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN (FORMAT JSON) " + sql.render(sql.QUEUE_COUNTS),
            {"count_limit": 1001, "running_ids": [1]},
        )
        raw = cursor.fetchone()[0]
        cursor.execute(sql.SET_LOCAL_NO_JIT)
        cursor.execute(
            sql.render(sql.QUEUE_COUNTS), {"count_limit": 1001, "running_ids": []}
        )
        rows = cursor.fetchall()
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    scans = [n for n in _plan_nodes(plan) if n.get("Relation Name") == "dpq_job"]
    assert scans and not [n for n in scans if n["Node Type"] == "Seq Scan"], raw
    assert [row[0] for row in rows] == ["q0", "q1", "q2"]
    # The fixture's failed jobs are all in q2 (n % 21 = 20 means n % 3 = 2).
    assert [row[1:4] for row in rows] == [(1001, 1001, 0)] * 2 + [(1001, 1001, 1001)]
