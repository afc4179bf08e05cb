"""Statements of periodic jobs: the scheduler's lock and each schedule's state.

Plain statements, one per name; see dpq.sql for the rules they follow.
"""

from __future__ import annotations

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
