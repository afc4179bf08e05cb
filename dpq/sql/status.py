"""Statements that watch the queue: capped counts, schedules' lag, workers, the database.

Read by ``manage.py dpq_status``, ``manage.py dpq_health`` and the metrics collector. Each
takes no locks on the job table and costs the same on a table of a million jobs as on one
of a hundred: counts stop at %(count_limit)s rows, and every scan walks a partial index.
Plain statements, one per name; see dpq.sql for the rules they follow.
"""

from __future__ import annotations

# A count of one queue's jobs in one state, stopped at %(count_limit)s rows: {where} and
# {order} are filled below. Ordered as the state's index is (dpq_job_due_idx for ready and
# delayed jobs, dpq_job_failed_idx for failed ones), so that the count is a walk of at most
# that many index entries whatever the planner guesses of the queue's size.
_CAPPED_COUNT = """(SELECT count(*) FROM (
            SELECT 1 FROM {job_table} j
            WHERE j.queue = q.queue AND {where}
            ORDER BY {order}
            LIMIT %(count_limit)s) AS capped)"""

# Per queue, one row each: name, queued (ready, running ones included), delayed, failed
# (each stopped at %(count_limit)s), and the execute_at of the oldest ready job. The queue
# names come from a skip scan of the two partial indexes (one index probe per queue, not a
# pass over the table); every count and the oldest ready job walk dpq_job_due_idx or
# dpq_job_failed_idx. Running jobs still have their rows (the claim is not committed) and
# are counted as queued or delayed here; the caller takes them out (see dpq.status).
QUEUE_COUNTS = (
    """
    WITH RECURSIVE live(queue) AS (
        (SELECT queue FROM {job_table} WHERE failed_at IS NULL ORDER BY queue LIMIT 1)
        UNION ALL
        SELECT (SELECT j.queue FROM {job_table} j
                WHERE j.failed_at IS NULL AND j.queue > live.queue
                ORDER BY j.queue LIMIT 1)
        FROM live WHERE live.queue IS NOT NULL
    ), dead(queue) AS (
        (SELECT queue FROM {job_table} WHERE failed_at IS NOT NULL ORDER BY queue LIMIT 1)
        UNION ALL
        SELECT (SELECT j.queue FROM {job_table} j
                WHERE j.failed_at IS NOT NULL AND j.queue > dead.queue
                ORDER BY j.queue LIMIT 1)
        FROM dead WHERE dead.queue IS NOT NULL
    ), q AS (
        SELECT queue FROM live WHERE queue IS NOT NULL
        UNION SELECT queue FROM dead WHERE queue IS NOT NULL
    )
    SELECT q.queue,
           """
    + _CAPPED_COUNT.replace(
        "{where}", "j.failed_at IS NULL AND j.execute_at <= now()"
    ).replace("{order}", "j.execute_at")
    + """,
           """
    + _CAPPED_COUNT.replace(
        "{where}", "j.failed_at IS NULL AND j.execute_at > now()"
    ).replace("{order}", "j.execute_at")
    + """,
           """
    + _CAPPED_COUNT.replace("{where}", "j.failed_at IS NOT NULL").replace(
        "{order}", "j.failed_at"
    )
    + """,
           (SELECT min(j.execute_at) FROM {job_table} j
            WHERE j.queue = q.queue AND j.failed_at IS NULL AND j.execute_at <= now()
              AND j.id <> ALL(%(running_ids)s::bigint[])),
           now()
    FROM q
    ORDER BY q.queue
"""
)

# The planner's estimate of the job table's rows (pg_class.reltuples; -1 before the first
# VACUUM or ANALYZE): whether pgrowlocks, which reads every row, is cheap enough to call.
JOB_TABLE_ESTIMATE = """
    SELECT COALESCE((SELECT reltuples::bigint FROM pg_class
                     WHERE oid = to_regclass(%(table_name)s)), -1)
"""

# The jobs whose start record names a claim still in progress: a job that runs alone (a
# worker of one thread, or a job once running when a worker died), with the worker that
# recorded it (dpq:<queue>:<host>:<pid>:starts). The start table only holds such jobs, so
# this reads a handful of rows. One row each: job id, task (NULL if the row is gone), worker,
# started_at.
RUNNING_STARTS = """
    SELECT s.job_id, j.task, s.worker, s.started_at
    FROM {start_table} s
    LEFT JOIN {job_table} j ON j.id = s.job_id
    WHERE s.claim_xid IS NOT NULL AND txid_status(s.claim_xid) = 'in progress'
    ORDER BY s.started_at, s.job_id
"""

# Each stored schedule, one row: queue, name, paused, next due time, and how far behind it
# is (seconds since next_due_at, 0 when not due yet; NULL when paused or not known yet).
SCHEDULE_LAG = """
    SELECT queue, name, paused, next_due_at,
           CASE WHEN NOT paused AND next_due_at IS NOT NULL
                THEN GREATEST(0, EXTRACT(EPOCH FROM clock_timestamp() - next_due_at))::float8
           END
    FROM {schedule_table}
    ORDER BY queue, name
"""

# For the transaction of a status read: the counts' estimated cost (a subquery per queue
# and state, each planned for an unknown queue) is high enough to set off JIT compilation,
# which takes far longer than the index walks it would speed up.
SET_LOCAL_NO_JIT = """
    SET LOCAL jit = off
"""

# Whether the database answers, and the server's clock.
DATABASE_PING = """
    SELECT 1, clock_timestamp()
"""

# --- Throughput history (dpq_throughput: jobs done and failed per queue per minute) ---------

# Add one worker process's counts since its last write: parallel arrays, one element per
# queue and minute. Concurrent writers of the same minute add up (ON CONFLICT ... +).
RECORD_THROUGHPUT = """
    INSERT INTO {throughput_table} AS t (queue, minute, done, failed)
    SELECT * FROM unnest(%(queues)s::text[], %(minutes)s::timestamptz[],
                         %(done)s::int[], %(failed)s::int[])
    ON CONFLICT (queue, minute) DO UPDATE
        SET done = t.done + EXCLUDED.done, failed = t.failed + EXCLUDED.failed
"""

# Forget the minutes older than a day.
PRUNE_THROUGHPUT = """
    DELETE FROM {throughput_table} WHERE minute < now() - interval '24 hours'
"""

# The last day's minutes, oldest first, for the dashboard's chart: queue, minute, done,
# failed, and the database's clock. At most 1,440 rows per queue.
THROUGHPUT_SINCE = """
    SELECT queue, minute, done, failed, now() FROM {throughput_table}
    WHERE minute >= now() - interval '24 hours'
    ORDER BY minute, queue
"""
