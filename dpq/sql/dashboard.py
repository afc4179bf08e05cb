"""Statements that look at the queue without changing it: the dashboard's counts and locks.

Plain statements, one per name; see dpq.sql for the rules they follow.
"""

from __future__ import annotations

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
