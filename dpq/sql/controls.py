"""Statements of the dashboard's controls: edit a job and requeue it, run a job again.

Plain statements, one per name; see dpq.sql for the rules they follow.
"""

from __future__ import annotations

# Lock one job for an edit and return what the edit needs: args, priority, execute_at,
# failed_at, queue. SKIP LOCKED: a job a worker holds (running) returns no row at once,
# instead of waiting until its run ends; JOB_EXISTS then tells it from a missing job.
LOCK_JOB_FOR_EDIT = """
    SELECT args, priority, execute_at, failed_at, queue, execute_at > now()
    FROM {job_table} WHERE id = %(id)s FOR UPDATE SKIP LOCKED
"""

# Whether a job row exists (a plain read: it never waits for a worker's row lock).
JOB_EXISTS = """
    SELECT EXISTS (SELECT 1 FROM {job_table} WHERE id = %(id)s)
"""

# Write an edited job back, ready at its run time (NULL: now), no longer failed. The caller
# holds the row's lock (LOCK_JOB_FOR_EDIT) in the same transaction.
EDIT_JOB = """
    UPDATE {job_table}
    SET args = %(args)s::jsonb, priority = %(priority)s,
        execute_at = COALESCE(%(execute_at)s, now()), failed_at = NULL,
        attempts = CASE WHEN %(reset_attempts)s THEN 0 ELSE attempts END
    WHERE id = %(id)s
"""

# Enqueue a copy of a job (task, args, priority, queue), ready now, with no attempts. A plain
# read of the original: a running job is copied without waiting for its worker. Returns the
# copy's id and queue, or nothing when the original is gone.
RUN_JOB_AGAIN = """
    INSERT INTO {job_table} (created_at, execute_at, priority, task, args, queue)
    SELECT now(), now(), priority, task, args, queue FROM {job_table} WHERE id = %(id)s
    RETURNING id, queue
"""

# The notify channel a schedule of the queue declared, if any: the channel its workers
# listen on.
SCHEDULED_QUEUE_CHANNEL = """
    SELECT notify_channel FROM {schedule_table}
    WHERE queue = %(queue)s AND notify_channel <> '' ORDER BY id LIMIT 1
"""
