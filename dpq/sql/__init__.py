"""Every SQL statement dpq and dpq_admin run, named, with their locking behaviour.

The statements live in modules by what they serve (claims, enqueue, repair, dashboard,
controls, diagnosis, health, pauses, schedules, status, tasks) and are all importable
from here: ``from dpq import sql; sql.CLAIM_JOB``.

Values are always bound as named parameters (``%(name)s``). The only text substituted into
a statement is a table name our own models define (``{job_table}``, ``{start_table}``),
quoted with the connection's ``quote_name``. A notify channel is free-form, so LISTEN is
composed with the driver's ``sql.Identifier`` and NOTIFY binds the channel as a value.
"""

from __future__ import annotations

import contextlib
import functools
import zlib
from collections.abc import Iterator, Mapping
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
from dpq.sql.controls import (
    EDIT_JOB,
    JOB_EXISTS,
    LOCK_JOB_FOR_EDIT,
    RUN_JOB_AGAIN,
    SCHEDULED_QUEUE_CHANNEL,
)
from dpq.sql.dashboard import (
    COUNT_JOBS_BY_STATE,
    COUNT_JOBS_CAPPED,
    CREATE_PGROWLOCKS_EXTENSION,
    PGROWLOCKS_STATUS,
    ROW_LOCKS_POSSIBLE,
    RUNNING_JOBS,
    TASK_NAMES,
    WORKER_CONNECTIONS,
)
from dpq.sql.diagnosis import JOBS_AHEAD, READY_IN_QUEUE
from dpq.sql.enqueue import (
    INSERT_JOB,
    INSERT_JOB_AND_NOTIFY,
    INSERT_JOBS,
    NOTIFY,
)
from dpq.sql.health import (
    CONNECTION_USE,
    JOB_TABLE_SIZES,
    JOB_TABLE_STATS,
    OLDEST_TRANSACTION,
)
from dpq.sql.pauses import (
    PAUSE_CHANNEL,
    PAUSE_QUEUE,
    PAUSED_QUEUES,
    QUEUE_PAUSE,
    RESUME_QUEUE,
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
from dpq.sql.tasks import (
    PRUNE_TASK_RESULTS,
    RECORD_TASK_ATTEMPT,
    TASK_ATTEMPTS,
    TASK_RESULT,
)

# Tables other than the job table that statements name ({start_table}, ...).
START_TABLE = "dpq_jobstart"
SCHEDULE_TABLE = "dpq_schedule"
LAST_SCHEDULED_TABLE = "dpq_scheduler_lastscheduledfor"
TASK_RESULT_TABLE = "dpq_taskresult"
# The attribute of a DatabaseWrapper holding dpq's kept cursor: (driver connection, cursor).
_KEPT_CURSOR = "dpq_kept_cursor"
PAUSE_TABLE = "dpq_queuepause"
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
        task_result_table=quote(TASK_RESULT_TABLE),
        pause_table=quote(PAUSE_TABLE),
        throughput_table=quote(THROUGHPUT_TABLE),
    )


@contextlib.contextmanager
def statement_cursor(using: str) -> Iterator[Any]:
    """A Django cursor on ``using`` for dpq's statements, kept for the driver connection's life.

    Opening a Django cursor costs about as much client CPU as a round trip, and a worker
    thread sends thousands of statements on one connection. It is Django's own wrapper, so
    execute_wrapper() hooks and error translation apply; while queries are logged (DEBUG,
    assertNumQueries) each statement gets a cursor of its own, so that the log has it.
    """
    connection = connections[using]
    if connection.queries_logged:
        with connection.cursor() as fresh:
            yield fresh
        return
    # As connection.cursor() does: a dead connection (CONN_HEALTH_CHECKS) is closed here,
    # and the next cursor opens a new one.
    connection.close_if_health_check_failed()
    kept = getattr(connection, _KEPT_CURSOR, None)
    raw = connection.connection
    # A connection the driver knows is closed gets what connection.cursor() raises for it
    # (InterfaceError: a lost connection), not a kept cursor's later errors.
    if kept is None or kept[0] is not raw or raw.closed:
        opened = connection.cursor()
        kept = (connection.connection, opened)
        setattr(connection, _KEPT_CURSOR, kept)
    yield kept[1]


def execute(
    using: str,
    statement: str,
    params: Mapping[str, Any] | None = None,
    *,
    job_table: str = "dpq_job",
) -> int:
    with statement_cursor(using) as cursor:
        cursor.execute(render(statement, job_table), params)
        return cursor.rowcount


def fetch_all(
    using: str,
    statement: str,
    params: Mapping[str, Any] | None = None,
    *,
    job_table: str = "dpq_job",
) -> list[tuple]:
    with statement_cursor(using) as cursor:
        cursor.execute(render(statement, job_table), params)
        return cursor.fetchall()


def fetch_one(
    using: str,
    statement: str,
    params: Mapping[str, Any] | None = None,
    *,
    job_table: str = "dpq_job",
) -> tuple | None:
    with statement_cursor(using) as cursor:
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
    "CONNECTION_USE",
    "COUNT_JOBS_BY_STATE",
    "COUNT_JOBS_CAPPED",
    "CREATE_PGROWLOCKS_EXTENSION",
    "DATABASE_PING",
    "DELETE_JOBS",
    "DELETE_UNDECLARED_LAST_SCHEDULED",
    "DELETE_UNDECLARED_SCHEDULES",
    "EDIT_JOB",
    "FIND_DEAD_CLAIMS",
    "INSERT_JOB",
    "INSERT_JOBS",
    "INSERT_JOB_AND_NOTIFY",
    "INSERT_LAST_SCHEDULED",
    "JOBS_AHEAD",
    "JOB_EXISTS",
    "JOB_TABLE_ESTIMATE",
    "JOB_TABLE_SIZES",
    "JOB_TABLE_STATS",
    "LAST_SCHEDULED_STATES",
    "LAST_SCHEDULED_TABLE",
    "LOCK_JOBS_AFTER_FAILED_COMMIT",
    "LOCK_JOB_FOR_EDIT",
    "LOCK_LAST_SCHEDULED",
    "LOCK_SCHEDULE",
    "NOTIFY",
    "OLDEST_TRANSACTION",
    "PAUSED_QUEUES",
    "PAUSE_CHANNEL",
    "PAUSE_QUEUE",
    "PAUSE_TABLE",
    "PGROWLOCKS_STATUS",
    "PRUNE_TASK_RESULTS",
    "PRUNE_THROUGHPUT",
    "PUT_BACK_JOB",
    "PUT_BACK_JOBS_UNCHANGED",
    "QUEUE_COUNTS",
    "QUEUE_PAUSE",
    "READY_IN_QUEUE",
    "RECORD_JOB_FAILURE",
    "RECORD_JOB_STARTS",
    "RECORD_LAST_SCHEDULED",
    "RECORD_SCHEDULED_JOB",
    "RECORD_TASK_ATTEMPT",
    "RECORD_THROUGHPUT",
    "RELOCK_LOST_CLAIMS",
    "REQUEUE_JOBS",
    "RESUME_QUEUE",
    "ROW_LOCKS_POSSIBLE",
    "RUNNING_JOBS",
    "RUNNING_STARTS",
    "RUN_JOB_AGAIN",
    "RUN_SCHEDULE_NOW",
    "SCHEDULED_QUEUE_CHANNEL",
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
    "TASK_ATTEMPTS",
    "TASK_NAMES",
    "TASK_RESULT",
    "TASK_RESULT_TABLE",
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
