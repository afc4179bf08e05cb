"""Statements that repair jobs by hand (the dashboard's actions), and connection set-up.

Plain statements, one per name; see dpq.sql for the rules they follow.
"""

from __future__ import annotations

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
