"""Statements that add jobs and wake the workers.

Plain statements, one per name; see dpq.sql for the rules they follow.
"""

from __future__ import annotations

from dpq.sql.claims import _JOB_COLUMNS

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
