"""Every SQL statement dpq and dpq_admin run, named, with their locking behaviour.

The statements live in modules by what they serve (claims, enqueue, repair, dashboard,
schedules, status) and are all importable from here: ``from dpq import sql; sql.CLAIM_JOB``.

Values are always bound as named parameters (``%(name)s``). The only text substituted into
a statement is a table name our own models define (``{job_table}``, ``{start_table}``),
quoted with the connection's ``quote_name``. A notify channel is free-form, so LISTEN is
composed with the driver's ``sql.Identifier`` and NOTIFY binds the channel as a value.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Mapping
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections

from dpq import driver
from dpq.sql.claims import (
    CHECK_DEFERRED_CONSTRAINTS,
    CHECK_DEFERRED_CONSTRAINTS_AND_RESTORE,
    CHECK_DUE_JOBS,
    CLAIM_JOB,
    CLAIM_JOBS,
    CLAIM_JOBS_BY_ID,
    CLEAR_FINISHED_JOB_STARTS,
    CLEAR_JOB_STARTS,
    FIND_DEAD_CLAIMS,
    LOCK_JOBS_AFTER_FAILED_COMMIT,
    PUT_BACK_JOB,
    PUT_BACK_JOBS_UNCHANGED,
    RECORD_JOB_FAILURE,
    RECORD_JOB_STARTS,
    RELOCK_LOST_CLAIMS,
    TRANSACTION_ISOLATION,
)
from dpq.sql.dashboard import (
    COUNT_JOBS_BY_STATE,
    CREATE_PGROWLOCKS_EXTENSION,
    PGROWLOCKS_STATUS,
    RUNNING_JOBS,
    WORKER_CONNECTIONS,
)
from dpq.sql.enqueue import (
    INSERT_JOB,
    INSERT_JOB_AND_NOTIFY,
    INSERT_JOBS,
    NOTIFY,
)
from dpq.sql.repair import (
    DELETE_JOBS,
    REQUEUE_JOBS,
    SET_APPLICATION_NAME,
    SET_ASYNCHRONOUS_COMMIT,
    SET_START_LOCK_TIMEOUT,
    SET_WORKER_CONNECTION,
)
from dpq.sql.schedules import (
    DELETE_UNDECLARED_LAST_SCHEDULED,
    DELETE_UNDECLARED_SCHEDULES,
    INSERT_LAST_SCHEDULED,
    LAST_SCHEDULED_STATES,
    LOCK_LAST_SCHEDULED,
    LOCK_SCHEDULE,
    RECORD_LAST_SCHEDULED,
    RECORD_SCHEDULED_JOB,
    RUN_SCHEDULE_NOW,
    SCHEDULE_STATES,
    SCHEDULER_NOW,
    SCHEDULING_WORKERS,
    SET_SCHEDULE_NEXT_DUE,
    SET_SCHEDULE_PAUSED,
    TRY_SCHEDULER_LOCK,
    UPSERT_SCHEDULES,
)
from dpq.sql.status import (
    DATABASE_PING,
    JOB_TABLE_ESTIMATE,
    PRUNE_THROUGHPUT,
    QUEUE_COUNTS,
    RECORD_THROUGHPUT,
    RUNNING_STARTS,
    SCHEDULE_LAG,
    SET_LOCAL_NO_JIT,
    THROUGHPUT_SINCE,
)

# Tables other than the job table that statements name ({start_table}, ...).
START_TABLE = "dpq_jobstart"
SCHEDULE_TABLE = "dpq_schedule"
LAST_SCHEDULED_TABLE = "dpq_scheduler_lastscheduledfor"
THROUGHPUT_TABLE = "dpq_throughput"


@functools.lru_cache(maxsize=64)
def prepared_claim(job_table: str = "dpq_job") -> tuple[str, str]:
    """PREPARE and EXECUTE statements for CLAIM_JOB on ``job_table``: (prepare, execute).

    A worker prepares its claim once per connection. Planning the claim costs PostgreSQL
    about twice what running it does, and with 8 connections on 2 cores the server's CPU is
    what one-job-per-transaction throughput is made of. The name is derived from the rendered
    text, so queues on other tables get a statement of their own; it is made of letters,
    digits and underscores only, so it needs no quoting beyond the double quotes.
    """
    text = render(CLAIM_JOB, job_table)
    name = f"dpq_claim_job_{zlib.crc32(text.encode()):08x}"
    body = text.replace("%(queue)s", "$1").replace("%(exclude_ids)s", "$2")
    prepare = f'PREPARE "{name}" (text, bigint[]) AS {body}'
    return prepare, f'EXECUTE "{name}" (%(queue)s, %(exclude_ids)s)'


def listen_statement(channel: str, raw: Any) -> str:
    """LISTEN on a channel, quoted as an identifier (safe for quotes, spaces, semicolons).

    ``raw`` is the driver connection the statement is for: quoting follows its encoding.
    """
    return "LISTEN " + driver.sql.Identifier(channel).as_string(raw)


def unlisten_statement(channel: str, raw: Any) -> str:
    return "UNLISTEN " + driver.sql.Identifier(channel).as_string(raw)


@functools.lru_cache(maxsize=256)
def render(statement: str, job_table: str = "dpq_job") -> str:
    """Fill a statement's table placeholders, quoted as PostgreSQL identifiers."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    return statement.format(
        job_table=quote(job_table),
        start_table=quote(START_TABLE),
        schedule_table=quote(SCHEDULE_TABLE),
        last_scheduled_table=quote(LAST_SCHEDULED_TABLE),
        throughput_table=quote(THROUGHPUT_TABLE),
    )


def execute(
    using: str,
    statement: str,
    params: Mapping[str, Any] | None = None,
    *,
    job_table: str = "dpq_job",
) -> int:
    with connections[using].cursor() as cursor:
        cursor.execute(render(statement, job_table), params)
        return cursor.rowcount


def fetch_all(
    using: str,
    statement: str,
    params: Mapping[str, Any] | None = None,
    *,
    job_table: str = "dpq_job",
) -> list[tuple]:
    with connections[using].cursor() as cursor:
        cursor.execute(render(statement, job_table), params)
        return cursor.fetchall()


def fetch_one(
    using: str,
    statement: str,
    params: Mapping[str, Any] | None = None,
    *,
    job_table: str = "dpq_job",
) -> tuple | None:
    with connections[using].cursor() as cursor:
        cursor.execute(render(statement, job_table), params)
        return cursor.fetchone()


__all__ = [
    "CHECK_DEFERRED_CONSTRAINTS",
    "CHECK_DEFERRED_CONSTRAINTS_AND_RESTORE",
    "CHECK_DUE_JOBS",
    "CLAIM_JOB",
    "CLAIM_JOBS",
    "CLAIM_JOBS_BY_ID",
    "CLEAR_FINISHED_JOB_STARTS",
    "CLEAR_JOB_STARTS",
    "COUNT_JOBS_BY_STATE",
    "CREATE_PGROWLOCKS_EXTENSION",
    "DATABASE_PING",
    "DELETE_JOBS",
    "DELETE_UNDECLARED_LAST_SCHEDULED",
    "DELETE_UNDECLARED_SCHEDULES",
    "FIND_DEAD_CLAIMS",
    "INSERT_JOB",
    "INSERT_JOBS",
    "INSERT_JOB_AND_NOTIFY",
    "INSERT_LAST_SCHEDULED",
    "JOB_TABLE_ESTIMATE",
    "LAST_SCHEDULED_STATES",
    "LAST_SCHEDULED_TABLE",
    "LOCK_JOBS_AFTER_FAILED_COMMIT",
    "LOCK_LAST_SCHEDULED",
    "LOCK_SCHEDULE",
    "NOTIFY",
    "PGROWLOCKS_STATUS",
    "PRUNE_THROUGHPUT",
    "PUT_BACK_JOB",
    "PUT_BACK_JOBS_UNCHANGED",
    "QUEUE_COUNTS",
    "RECORD_JOB_FAILURE",
    "RECORD_JOB_STARTS",
    "RECORD_LAST_SCHEDULED",
    "RECORD_SCHEDULED_JOB",
    "RECORD_THROUGHPUT",
    "RELOCK_LOST_CLAIMS",
    "REQUEUE_JOBS",
    "RUNNING_JOBS",
    "RUNNING_STARTS",
    "RUN_SCHEDULE_NOW",
    "SCHEDULER_NOW",
    "SCHEDULE_LAG",
    "SCHEDULE_STATES",
    "SCHEDULE_TABLE",
    "SCHEDULING_WORKERS",
    "SET_APPLICATION_NAME",
    "SET_ASYNCHRONOUS_COMMIT",
    "SET_LOCAL_NO_JIT",
    "SET_SCHEDULE_NEXT_DUE",
    "SET_SCHEDULE_PAUSED",
    "SET_START_LOCK_TIMEOUT",
    "SET_WORKER_CONNECTION",
    "START_TABLE",
    "THROUGHPUT_SINCE",
    "THROUGHPUT_TABLE",
    "TRANSACTION_ISOLATION",
    "TRY_SCHEDULER_LOCK",
    "UPSERT_SCHEDULES",
    "WORKER_CONNECTIONS",
    "execute",
    "fetch_all",
    "fetch_one",
    "listen_statement",
    "prepared_claim",
    "render",
    "unlisten_statement",
]
