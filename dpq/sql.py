"""Every SQL statement dpq and dpq_admin run, named, with their locking behaviour.

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

START_TABLE = "dpq_jobstart"
SCHEDULE_TABLE = "dpq_schedule"
LAST_SCHEDULED_TABLE = "dpq_scheduler_lastscheduledfor"

# The job columns every claim returns, in the order BaseJob.from_claim_row reads them.
# args comes back as text, whichever driver decodes it (Django makes both hand jsonb back as text).
_JOB_COLUMNS = "id, created_at, execute_at, priority, task, args::text, queue, attempts, last_error, failed_at"
_JOB_COLUMNS_OF_J = ", ".join(f"j.{column}" for column in _JOB_COLUMNS.split(", "))

# --- Claim and run -----------------------------------------------------------------------

# What every claim returns after the job columns (BaseJob.from_claim_row): the start counts
# (crash accounting; 0 when the job never started), the row's xmax from before this claim
# locked it (see FIND_DEAD_CLAIMS; FOR UPDATE returns the values from before its own lock),
# and this transaction's id (a start record names the claim it has counted).
_CLAIM_EXTRA_COLUMNS = """
        COALESCE((SELECT s.starts FROM {start_table} s WHERE s.job_id = j.id), 0),
        COALESCE((SELECT s.solo_starts FROM {start_table} s WHERE s.job_id = j.id), 0),
        {held_by},
        txid_current()"""

# The best ready jobs of one queue, locked (FOR UPDATE returns each row's xmax from before
# its own lock): the CTE every claim of ready jobs starts with. The row locks last until the
# caller's transaction ends; SKIP LOCKED passes over rows other workers hold instead of
# waiting for them. The choice walks dpq_job_claim_idx in order (no Sort, no Seq Scan).
_PICK_READY = """
    WITH picked AS MATERIALIZED (
        SELECT id, xmax::text::bigint AS held_by FROM {job_table}
        WHERE queue = %(queue)s AND failed_at IS NULL AND execute_at <= now()
          AND id <> ALL(%(exclude_ids)s::bigint[])
        ORDER BY priority DESC, execute_at, id
        FOR UPDATE SKIP LOCKED
        LIMIT {limit}
    )"""

# Delete the picked rows, joined to them for their earlier xmax. ARRAY(...) makes the choice
# an InitPlan, so the DELETE is a primary-key lookup.
_DELETE_PICKED = (
    """
    DELETE FROM {job_table} AS j USING picked p
    WHERE j.id = ANY(ARRAY(SELECT id FROM picked)) AND p.id = j.id
    RETURNING """
    + _JOB_COLUMNS_OF_J
    + ","
    + _CLAIM_EXTRA_COLUMNS.replace("{held_by}", "p.held_by")
)

# Claim the best ready job of one queue and delete it (the worker's hot path). For one row the
# extra columns are cheapest as lookups in RETURNING: no join to plan.
CLAIM_JOB = (
    _PICK_READY.replace("{limit}", "1")
    + """
    DELETE FROM {job_table} AS j WHERE id = ANY(ARRAY(SELECT id FROM picked))
    RETURNING """
    + _JOB_COLUMNS
    + ","
    + _CLAIM_EXTRA_COLUMNS.replace(
        "{held_by}", "(SELECT p.held_by FROM picked p WHERE p.id = j.id)"
    )
)

# Claim up to %(limit)s jobs as CLAIM_JOB does, joined to the chosen rows rather than looking
# each up in RETURNING (which grows with the square of the count). Rows come back in no
# particular order, so callers sort them.
CLAIM_JOBS = _PICK_READY.replace("{limit}", "%(limit)s") + _DELETE_PICKED

# Claim given jobs by id (a batch's suspects, run alone after the batch commits), as
# CLAIM_JOBS does: deleted, locked until commit, rows others hold skipped.
CLAIM_JOBS_BY_ID = (
    """
    WITH picked AS MATERIALIZED (
        SELECT id, xmax::text::bigint AS held_by FROM {job_table}
        WHERE id = ANY(%(ids)s::bigint[]) AND failed_at IS NULL
        FOR UPDATE SKIP LOCKED
    )"""
    + _DELETE_PICKED
)

# The 64-bit id of the transaction whose 32-bit id is {xmax} (bigint): it precedes our own
# transaction, so its epoch is ours or the one before. 0 when that would be negative.
_FULL_XID = """GREATEST(0, txid_current()
        - ((txid_current() - {xmax}) %% 4294967296 + 4294967296) %% 4294967296)"""

# Crash accounting without a write per job. A claim that dies with its worker is rolled back,
# but the row keeps the dead transaction's id in xmax (the lock it took), marked aborted in
# the commit log, until another transaction locks or changes the row. A claim returns that
# xmax; for the rows where it is not 0 (rare: a fresh or put-back row has none), this asks
# whether the transaction rolled back and whether the start record already counted it. It
# returns, for each such row, the dead claim's 64-bit transaction id when it is a death not
# counted yet (else NULL), and the row's start counts as they are now: the claim read them
# with its snapshot, from before the lock it waited out, and the transaction that held the
# row may have written them since. Runs in the claim's transaction. Any lock that rolled back
# counts (the job then runs alone once).
FIND_DEAD_CLAIMS = (
    """
    SELECT t.job_id,
           CASE WHEN txid_status(x.held) = 'aborted' AND x.held IS DISTINCT FROM s.claim_xid
                THEN x.held END,
           COALESCE(s.starts, 0), COALESCE(s.solo_starts, 0)
    FROM unnest(%(ids)s::bigint[], %(held_by)s::bigint[]) AS t(job_id, held_by)
    CROSS JOIN LATERAL (SELECT """
    + _FULL_XID.replace("{xmax}", "t.held_by")
    + """) AS x(held)
    LEFT JOIN {start_table} s ON s.job_id = t.job_id
    WHERE t.held_by <> 0
"""
)

# Put claimed jobs back untouched, as they were before the claim: a batch's suspects (run
# alone after the batch) and the jobs its time limit left. Runs in the claim transaction: the
# rows come back when it commits, with no trace of the claim (a rolled-back claim would look
# like a worker's death, see FIND_DEAD_CLAIMS).
PUT_BACK_JOBS_UNCHANGED = """
    INSERT INTO {job_table}
        (id, created_at, execute_at, priority, task, args, queue, attempts, last_error, failed_at)
    SELECT * FROM unnest(%(ids)s::bigint[], %(created_ats)s::timestamptz[],
                         %(execute_ats)s::timestamptz[], %(priorities)s::int[], %(tasks)s::text[],
                         %(args)s::jsonb[], %(queues)s::text[], %(attempts)s::int[],
                         %(last_errors)s::text[], %(failed_ats)s::timestamptz[])
"""

# The end of a task's run inside a claim: check the deferred constraints it left (Django
# makes foreign keys DEFERRABLE INITIALLY DEFERRED) while its savepoint can still roll them
# back, so that a violation is the task's failure rather than the claim's COMMIT's.
CHECK_DEFERRED_CONSTRAINTS = """
    SET CONSTRAINTS ALL IMMEDIATE
"""

# The same in a batch, where later jobs share the transaction: checked inside a savepoint that
# is rolled back, which puts the constraints back as they were (deferred) for the next job.
CHECK_DEFERRED_CONSTRAINTS_AND_RESTORE = """
    SAVEPOINT dpq_constraints;
    SET CONSTRAINTS ALL IMMEDIATE;
    ROLLBACK TO SAVEPOINT dpq_constraints;
    RELEASE SAVEPOINT dpq_constraints
"""

# After a claim's COMMIT failed (a serialization failure, an error the constraint check could
# not see), and so rolled back: lock the claim's jobs again, skipping any another worker took
# in between. Committed, the lock leaves a committed transaction's id in each row's xmax, so
# the next claim does not take the rolled-back claim for a death. Returns the ids locked.
LOCK_JOBS_AFTER_FAILED_COMMIT = """
    SELECT id FROM {job_table}
    WHERE id = ANY(%(ids)s::bigint[]) AND failed_at IS NULL
    ORDER BY id
    FOR UPDATE SKIP LOCKED
"""

# Record a failed run of a job whose claim was rolled back (the row is in the table again,
# locked by LOCK_JOBS_AFTER_FAILED_COMMIT): one more attempt, the error, and either a later
# execute_at (retry) or failed_at (given up); its start record is forgotten.
RECORD_JOB_FAILURE = """
    WITH cleared AS (
        DELETE FROM {start_table} WHERE job_id = %(id)s
    )
    UPDATE {job_table}
    SET attempts = %(attempts)s, last_error = %(last_error)s,
        execute_at = CASE WHEN %(give_up)s THEN execute_at
                          ELSE now() + make_interval(secs => %(retry_in)s) END,
        failed_at = CASE WHEN %(give_up)s THEN now() END
    WHERE id = %(id)s
"""

# For an idle worker's dispatcher: is any job of the queue ready (running ones count too:
# only a claim can tell them apart), and in how many seconds is the next delayed one due
# (NULL if none)? Seconds, not a timestamp: the server's clock does the arithmetic, so the
# worker never subtracts datetimes, naive or aware (USE_TZ); each side's EXTRACT, because
# subtracting the timestamps fails on 'infinity'. Two LIMIT 1 walks of dpq_job_due_idx in
# execute_at order (an EXISTS here was planned as a Seq Scan, which reads the whole table
# right after a backlog drains); takes no locks. One such query per poll interval is all an
# idle worker process costs the database.
CHECK_DUE_JOBS = """
    SELECT COALESCE((
               SELECT execute_at FROM {job_table}
               WHERE queue = %(queue)s AND failed_at IS NULL
               ORDER BY execute_at LIMIT 1
           ) <= now(), false),
           (SELECT EXTRACT(EPOCH FROM execute_at) - EXTRACT(EPOCH FROM now())
            FROM {job_table}
            WHERE queue = %(queue)s AND failed_at IS NULL AND execute_at > now()
            ORDER BY execute_at LIMIT 1)::float8
"""

# Count starts before the tasks run (crash accounting), one row per job: %(starts)s and
# %(solo)s are the starts to add (a solo start, or a death the claim found, or 0 when only
# %(claim_xids)s moves on), %(claim_xids)s the claim transaction each record now accounts for
# (a later claim that finds it dead does not count it again). Runs on its own connection in
# autocommit with synchronous_commit off, so it is committed (and survives the claim's
# rollback if the process dies) without waiting for a WAL flush.
RECORD_JOB_STARTS = """
    INSERT INTO {start_table} AS s
        (job_id, starts, solo_starts, started_at, worker, claim_xid)
    SELECT job_id, starts, solo, now(), %(worker)s, claim_xid
    FROM unnest(%(ids)s::bigint[], %(starts)s::int[], %(solo)s::int[],
                %(claim_xids)s::bigint[]) AS t(job_id, starts, solo, claim_xid)
    ON CONFLICT (job_id) DO UPDATE
        SET starts = s.starts + EXCLUDED.starts,
            solo_starts = s.solo_starts + EXCLUDED.solo_starts,
            started_at = CASE WHEN EXCLUDED.starts > 0 THEN EXCLUDED.started_at
                              ELSE s.started_at END,
            worker = CASE WHEN EXCLUDED.starts > 0 THEN EXCLUDED.worker ELSE s.worker END,
            claim_xid = EXCLUDED.claim_xid
"""

# Forget the starts of jobs whose run finished (success or recorded failure). Runs inside the
# claim transaction, so it commits or rolls back with the job's removal.
CLEAR_JOB_STARTS = """
    DELETE FROM {start_table} WHERE job_id = ANY(%(ids)s::bigint[])
"""

# The same after the claim committed, on the crash-accounting connection: for a claim at
# REPEATABLE READ or SERIALIZABLE, whose snapshot predates the start records written during
# it (it cannot see them, or deleting them is a serialization failure). A record of a claim
# still running (another worker took the job since) is kept.
CLEAR_FINISHED_JOB_STARTS = """
    DELETE FROM {start_table}
    WHERE job_id = ANY(%(ids)s::bigint[])
      AND (claim_xid IS NULL OR txid_status(claim_xid) IS DISTINCT FROM 'in progress')
"""

# The isolation level of the current transaction ('read committed', 'repeatable read', ...).
TRANSACTION_ISOLATION = """
    SELECT current_setting('transaction_isolation')
"""

# Put a claimed job back after its task raised: with one more attempt, the traceback, and
# either a later execute_at (retry) or failed_at (given up). Same id, so history and links
# survive. Runs in the claim transaction after rolling back the task's savepoint, and forgets
# the job's start record (crash accounting) with it.
PUT_BACK_JOB = """
    WITH cleared AS (
        DELETE FROM {start_table} WHERE job_id = %(id)s AND %(clear_start)s
    )
    INSERT INTO {job_table}
        (id, created_at, execute_at, priority, task, args, queue, attempts, last_error, failed_at)
    VALUES (
        %(id)s, %(created_at)s,
        CASE WHEN %(give_up)s THEN %(execute_at)s
             ELSE now() + make_interval(secs => %(retry_in)s) END,
        %(priority)s, %(task)s, %(args)s::jsonb, %(queue)s, %(attempts)s, %(last_error)s,
        CASE WHEN %(give_up)s THEN now() END
    )
"""

# Lock again, in a transaction that commits, the jobs of claims this worker lost with its
# connection (a server restart, a failover, a network cut) that the server rolled back: the
# committed lock replaces the rolled-back claim's id in xmax, so the next claim of each does
# not count a death (see FIND_DEAD_CLAIMS). Rows another worker holds are skipped.
RELOCK_LOST_CLAIMS = """
    SELECT j.id FROM {job_table} j
    JOIN unnest(%(ids)s::bigint[], %(claim_xids)s::bigint[]) AS t(id, claim_xid) ON t.id = j.id
    WHERE txid_status(t.claim_xid) = 'aborted'
    FOR UPDATE OF j SKIP LOCKED
"""

# --- Enqueue -------------------------------------------------------------------------------

# Insert one job. execute_at NULL means now().
INSERT_JOB = (
    """
    INSERT INTO {job_table} (created_at, execute_at, priority, task, args, queue)
    VALUES (now(), COALESCE(%(execute_at)s, now()), %(priority)s, %(task)s, %(args)s::jsonb,
            %(queue)s)
    RETURNING """
    + _JOB_COLUMNS
)

# Insert one job and notify listeners in the same round trip. The payload is constant, so
# PostgreSQL folds every notification of one transaction into one.
INSERT_JOB_AND_NOTIFY = (
    """
    WITH job AS ("""
    + INSERT_JOB
    + """
    ), notified AS (SELECT pg_notify(%(channel)s, ''))
    SELECT job.* FROM job, notified
"""
)

# Insert many jobs with one statement: parallel arrays, unnested row by row.
INSERT_JOBS = """
    INSERT INTO {job_table} (created_at, execute_at, priority, task, args, queue)
    SELECT now(), COALESCE(e, now()), p, t, a, %(queue)s
    FROM unnest(%(execute_ats)s::timestamptz[], %(priorities)s::int[], %(tasks)s::text[],
                %(args)s::jsonb[]) AS item(e, p, t, a)
    RETURNING id, created_at, execute_at
"""

# Wake the queue's listeners. The channel is a bound value, never part of the statement.
NOTIFY = """
    SELECT pg_notify(%(channel)s, '')
"""

# --- Repair ---------------------------------------------------------------------------------

# Make failed or delayed jobs ready now. Rows a worker holds (running jobs) are skipped, not
# waited for. Returns one row: requeued, skipped because running, skipped because already
# queued, ids that no longer exist.
REQUEUE_JOBS = """
    WITH wanted AS (
        SELECT id FROM {job_table} WHERE id = ANY(%(ids)s::bigint[])
    ), locked AS (
        SELECT id FROM {job_table} WHERE id = ANY(%(ids)s::bigint[]) FOR UPDATE SKIP LOCKED
    ), requeued AS (
        UPDATE {job_table} j
        SET failed_at = NULL, execute_at = now(),
            attempts = CASE WHEN %(reset_attempts)s THEN 0 ELSE j.attempts END
        FROM locked
        WHERE j.id = locked.id AND (j.failed_at IS NOT NULL OR j.execute_at > now())
        RETURNING j.id
    )
    SELECT (SELECT count(*) FROM requeued),
           (SELECT count(*) FROM wanted) - (SELECT count(*) FROM locked),
           (SELECT count(*) FROM locked) - (SELECT count(*) FROM requeued),
           cardinality(%(ids)s::bigint[]) - (SELECT count(*) FROM wanted)
"""

# Delete jobs by id, skipping rows a worker holds. Returns one row: deleted, skipped because
# running, ids that no longer exist.
DELETE_JOBS = """
    WITH wanted AS (
        SELECT id FROM {job_table} WHERE id = ANY(%(ids)s::bigint[])
    ), locked AS (
        SELECT id FROM {job_table} WHERE id = ANY(%(ids)s::bigint[]) FOR UPDATE SKIP LOCKED
    ), deleted AS (
        DELETE FROM {job_table} j USING locked WHERE j.id = locked.id RETURNING j.id
    )
    SELECT (SELECT count(*) FROM deleted),
           (SELECT count(*) FROM wanted) - (SELECT count(*) FROM locked),
           cardinality(%(ids)s::bigint[]) - (SELECT count(*) FROM wanted)
"""

# --- Connection set-up ---------------------------------------------------------------------

# Name a connection so pg_stat_activity (and the dashboard) can tell workers apart.
SET_APPLICATION_NAME = """
    SELECT set_config('application_name', %(name)s, false)
"""

# Name a worker thread's connection, and read the idle_in_transaction_session_timeout it runs
# under (milliseconds, 0 when off) so that a connection the server ends can be explained.
SET_WORKER_CONNECTION = """
    SELECT set_config('application_name', %(name)s, false),
           (SELECT setting::int FROM pg_settings
            WHERE name = 'idle_in_transaction_session_timeout')
"""

# Make the crash-accounting connection's commits cheap: a start record lost in a power cut
# only costs one crash mark.
SET_ASYNCHRONOUS_COMMIT = """
    SET synchronous_commit = off
"""

# Bound how long the crash-accounting connection waits for a start record's row lock. Only
# the transaction that cleared the job's last start can hold it; when that is the caller's
# own open transaction (the same job run twice inside one transaction.atomic(), as in a
# Django TestCase), waiting would deadlock across two connections, unseen by PostgreSQL.
SET_START_LOCK_TIMEOUT = """
    SET lock_timeout = '2s'
"""


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


# --- Introspection --------------------------------------------------------------------------

# Whether the pgrowlocks extension is installed, whether this server ships it, and whether
# the current role may create it (it is not a trusted extension: superuser only). One row.
# Reads the catalogs only; takes no locks on the job table.
PGROWLOCKS_STATUS = """
    SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgrowlocks'),
           EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgrowlocks'),
           COALESCE((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false)
"""

# Install pgrowlocks so the dashboard can tell running jobs from queued ones. Superuser only.
CREATE_PGROWLOCKS_EXTENSION = """
    CREATE EXTENSION IF NOT EXISTS pgrowlocks
"""

# The jobs whose rows are locked right now, with the connection holding each lock: a worker's
# open claim transaction (its DELETE shows with mode "Update"), or briefly a requeue/delete.
# Any mode counts. One row per locked job: id, queue, task, row state, lock modes, pid,
# application_name, client address, xact_start, seconds since xact_start. pgrowlocks reads the
# whole table without blocking anyone (it takes AccessShareLock, skips nothing, waits for
# nothing), so it is called once per page, never per row. The locked row is still visible:
# the claim's DELETE is not committed. %(table_name)s is the job table's name, bound as text.
RUNNING_JOBS = """
    SELECT j.id, j.queue, j.task,
           CASE WHEN j.failed_at IS NOT NULL THEN 'failed'
                WHEN j.execute_at > now() THEN 'delayed'
                ELSE 'queued' END,
           l.modes::text[], l.pids[1], a.application_name, a.client_addr::text, a.xact_start,
           EXTRACT(EPOCH FROM now() - a.xact_start)::float8
    FROM pgrowlocks(%(table_name)s) AS l
    JOIN {job_table} j ON j.ctid = l.locked_row
    LEFT JOIN pg_stat_activity a ON a.pid = l.pids[1]
    ORDER BY a.xact_start NULLS LAST, j.id
"""

# Job counts by queue and task, in one pass over the table: queued (ready, not locked),
# running (the ids RUNNING_JOBS found locked), delayed, failed, and the execute_at of the
# oldest queued job of each group (how far behind the workers are). Takes no locks.
COUNT_JOBS_BY_STATE = """
    SELECT queue, task,
           count(*) FILTER (WHERE failed_at IS NULL AND execute_at <= now()
                            AND id <> ALL(%(running_ids)s::bigint[])),
           count(*) FILTER (WHERE id = ANY(%(running_ids)s::bigint[])),
           count(*) FILTER (WHERE failed_at IS NULL AND execute_at > now()
                            AND id <> ALL(%(running_ids)s::bigint[])),
           count(*) FILTER (WHERE failed_at IS NOT NULL
                            AND id <> ALL(%(running_ids)s::bigint[])),
           min(execute_at) FILTER (WHERE failed_at IS NULL AND execute_at <= now()
                                   AND id <> ALL(%(running_ids)s::bigint[]))
    FROM {job_table}
    GROUP BY queue, task
    ORDER BY queue, task
"""

# The connections of dpq workers to this database (application_name
# dpq:<queue>:<host>:<pid>:<thread>; pg_stat_activity lists every database's), one row each: pid, application_name, client address, backend_start, xact_start, state,
# state_change, wait_event. Reads pg_stat_activity only. Without pg_read_all_stats, other
# roles' rows show no query or timing (PostgreSQL hides them), but still show their names.
WORKER_CONNECTIONS = """
    SELECT pid, application_name, client_addr::text, backend_start, xact_start, state,
           state_change, wait_event
    FROM pg_stat_activity
    WHERE application_name LIKE 'dpq:%%' AND datname = current_database()
    ORDER BY application_name, pid
"""


# --- Schedules -------------------------------------------------------------------------------
# Times are read as UTC timestamps without time zone (``AT TIME ZONE 'UTC'``) and bound as aware
# datetimes: exact to the microsecond whatever the driver and USE_TZ, so a due time read
# back compares equal to the one written.

# The database's clock, which every scheduler of a queue shares (hosts' clocks may differ).
SCHEDULER_NOW = """
    SELECT clock_timestamp() AT TIME ZONE 'UTC'
"""

# Try to become the scheduling worker of a queue: a session-level advisory lock, held until
# the connection closes (a worker killed with -9 loses it as soon as its socket closes).
# Never waits. Returns true when this session holds the lock.
TRY_SCHEDULER_LOCK = """
    SELECT pg_try_advisory_lock(%(lock_space)s::int, %(lock_key)s::int)
"""

# The connections that hold scheduler locks now, for the dashboard: the lock key, then pid,
# application_name (dpq:<queue>:<host>:<pid>:scheduler), client address, backend_start.
# Reads pg_locks and pg_stat_activity only.
SCHEDULING_WORKERS = """
    SELECT l.objid::bigint, a.pid, a.application_name, a.client_addr::text, a.backend_start
    FROM pg_locks l
    JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
      AND l.classid::bigint = %(lock_space)s AND l.objid::bigint = ANY(%(lock_keys)s::bigint[])
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""

# Declare a queue's schedules: insert the missing ones with %(now)s as their last due time
# (a new schedule first runs at its next due time, not at once), and refresh what the code
# says of the others. last_due_at and paused are kept. Parallel arrays, one row each.
UPSERT_SCHEDULES = """
    INSERT INTO {schedule_table} AS s
        (queue, name, expression, time_zone, args, priority, notify_channel, last_due_at,
         paused, created_at, updated_at)
    SELECT %(queue)s, n, e, z, a, p, COALESCE(%(channel)s, ''), %(now)s, false, now(), now()
    FROM unnest(%(names)s::text[], %(expressions)s::text[], %(zones)s::text[],
                %(args)s::jsonb[], %(priorities)s::int[]) AS t(n, e, z, a, p)
    ON CONFLICT (queue, name) DO UPDATE
        SET expression = EXCLUDED.expression, time_zone = EXCLUDED.time_zone,
            args = EXCLUDED.args, priority = EXCLUDED.priority,
            notify_channel = EXCLUDED.notify_channel, updated_at = now()
        WHERE (s.expression, s.time_zone, s.args, s.priority, s.notify_channel)
              IS DISTINCT FROM (EXCLUDED.expression, EXCLUDED.time_zone, EXCLUDED.args,
                                EXCLUDED.priority, EXCLUDED.notify_channel)
"""

# Forget the schedules of a queue that its code no longer declares.
DELETE_UNDECLARED_SCHEDULES = """
    DELETE FROM {schedule_table} WHERE queue = %(queue)s AND name <> ALL(%(names)s::text[])
"""

# A queue's schedules as the scheduler needs them: name, last due time, next due time (as
# last written), paused. Takes no locks.
SCHEDULE_STATES = """
    SELECT name, last_due_at AT TIME ZONE 'UTC', next_due_at AT TIME ZONE 'UTC', paused
    FROM {schedule_table} WHERE queue = %(queue)s
"""

# Lock one schedule's row for the transaction that enqueues its due job, and read it as it
# is now: a second scheduler waits here, then sees the due time already advanced (under
# REPEATABLE READ or SERIALIZABLE it fails instead, and retries on its next round).
LOCK_SCHEDULE = """
    SELECT last_due_at AT TIME ZONE 'UTC', paused
    FROM {schedule_table} WHERE queue = %(queue)s AND name = %(name)s
    FOR UPDATE
"""

# Record, in the transaction that enqueued it, the job of a schedule's due time.
RECORD_SCHEDULED_JOB = """
    UPDATE {schedule_table}
    SET last_due_at = %(due_at)s, next_due_at = %(next_due_at)s, last_enqueued_at = now(),
        last_job_id = %(job_id)s
    WHERE queue = %(queue)s AND name = %(name)s
"""

# Say when a schedule is next due (for the dashboard), when that changed.
SET_SCHEDULE_NEXT_DUE = """
    UPDATE {schedule_table} SET next_due_at = %(next_due_at)s
    WHERE queue = %(queue)s AND name = %(name)s
      AND next_due_at IS DISTINCT FROM %(next_due_at)s
"""

# Enqueue a schedule's job now (the dashboard's "run now"), with its args and priority, and
# note it on the schedule; its due times are left as they are. Returns the job's id, its
# task and the channel to notify ('': none), or nothing when the schedule is gone.
RUN_SCHEDULE_NOW = """
    WITH job AS (
        INSERT INTO {job_table} (created_at, execute_at, priority, task, args, queue)
        SELECT now(), now(), priority, name, args, queue FROM {schedule_table}
        WHERE id = %(id)s
        RETURNING id, task
    ), noted AS (
        UPDATE {schedule_table} s SET last_enqueued_at = now(), last_job_id = job.id
        FROM job WHERE s.id = %(id)s
        RETURNING s.notify_channel
    )
    SELECT job.id, job.task, noted.notify_channel FROM job, noted
"""

# Pause or resume a schedule. A resumed schedule starts again from now: the due times it
# missed while paused are not enqueued. Returns the queue and name, or nothing.
SET_SCHEDULE_PAUSED = """
    UPDATE {schedule_table}
    SET paused = %(paused)s,
        last_due_at = CASE WHEN paused AND NOT %(paused)s
                           THEN GREATEST(last_due_at, clock_timestamp()) ELSE last_due_at END,
        updated_at = now()
    WHERE id = %(id)s
    RETURNING queue, name
"""

# The same for dpq_scheduler's table (the original package's): one row per task, across
# queues, holding the due time last enqueued. New tasks start from %(now)s.
INSERT_LAST_SCHEDULED = """
    INSERT INTO {last_scheduled_table} (task, execute_at)
    SELECT unnest(%(names)s::text[]), %(now)s
    ON CONFLICT (task) DO NOTHING
"""

# Forget tasks no Scheduler declares any more (the original did so every round).
DELETE_UNDECLARED_LAST_SCHEDULED = """
    DELETE FROM {last_scheduled_table} WHERE task <> ALL(%(names)s::text[])
"""

# Every task's due time last enqueued. Takes no locks.
LAST_SCHEDULED_STATES = """
    SELECT task, execute_at AT TIME ZONE 'UTC' FROM {last_scheduled_table}
"""

# Lock one task's row for the transaction that enqueues its due job (see LOCK_SCHEDULE).
LOCK_LAST_SCHEDULED = """
    SELECT execute_at AT TIME ZONE 'UTC' FROM {last_scheduled_table}
    WHERE task = %(name)s
    FOR UPDATE
"""

# Record the due time just enqueued, in the same transaction.
RECORD_LAST_SCHEDULED = """
    UPDATE {last_scheduled_table} SET execute_at = %(due_at)s WHERE task = %(name)s
"""
