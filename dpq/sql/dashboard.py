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

# Whether another transaction may hold row locks on the job table now: locking or changing a
# row takes RowShareLock or RowExclusiveLock on its table until the transaction (or the
# savepoint) ends, and pg_locks lists every one held, fast-path ones and prepared
# transactions' (pid NULL) included. When none is held, no row is locked and the page need
# not call pgrowlocks, which reads the whole table. One row, one boolean; catalogs only.
# %(table_name)s is the job table's name, bound as text.
ROW_LOCKS_POSSIBLE = """
    SELECT EXISTS (
        SELECT 1 FROM pg_locks
        WHERE locktype = 'relation'
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND relation = to_regclass(%(table_name)s)
          AND mode IN ('RowShareLock', 'RowExclusiveLock')
          AND granted
          AND pid IS DISTINCT FROM pg_backend_pid()
    )
"""

# Job counts per queue that stop at %(limit)s rows each, so that a page costs the same at a
# million jobs: queue names by a skip scan of the partial indexes (one probe per queue),
# then per queue the ready, the delayed and the failed rows counted through
# dpq_job_due_idx and dpq_job_failed_idx (index-only, at most %(limit)s entries each), and
# the execute_at of its oldest ready job not in %(running_ids)s. One row per queue: queue,
# ready, delayed, failed (each at most %(limit)s, running rows included), oldest ready.
COUNT_JOBS_CAPPED = """
    WITH RECURSIVE waiting(queue) AS (
        (SELECT queue FROM {job_table} WHERE failed_at IS NULL ORDER BY queue LIMIT 1)
        UNION ALL
        SELECT (SELECT j.queue FROM {job_table} j
                WHERE j.failed_at IS NULL AND j.queue > w.queue ORDER BY j.queue LIMIT 1)
        FROM waiting w WHERE w.queue IS NOT NULL
    ), failed(queue) AS (
        (SELECT queue FROM {job_table} WHERE failed_at IS NOT NULL ORDER BY queue LIMIT 1)
        UNION ALL
        SELECT (SELECT j.queue FROM {job_table} j
                WHERE j.failed_at IS NOT NULL AND j.queue > f.queue ORDER BY j.queue LIMIT 1)
        FROM failed f WHERE f.queue IS NOT NULL
    ), names(queue) AS (
        SELECT queue FROM waiting WHERE queue IS NOT NULL
        UNION
        SELECT queue FROM failed WHERE queue IS NOT NULL
    )
    SELECT n.queue,
           (SELECT count(*) FROM (
                SELECT 1 FROM {job_table} j
                WHERE j.queue = n.queue AND j.failed_at IS NULL AND j.execute_at <= now()
                LIMIT %(limit)s) s),
           (SELECT count(*) FROM (
                SELECT 1 FROM {job_table} j
                WHERE j.queue = n.queue AND j.failed_at IS NULL AND j.execute_at > now()
                LIMIT %(limit)s) s),
           (SELECT count(*) FROM (
                SELECT 1 FROM {job_table} j
                WHERE j.queue = n.queue AND j.failed_at IS NOT NULL
                LIMIT %(limit)s) s),
           (SELECT j.execute_at FROM {job_table} j
            WHERE j.queue = n.queue AND j.failed_at IS NULL AND j.execute_at <= now()
              AND j.id <> ALL(%(running_ids)s::bigint[])
            ORDER BY j.execute_at LIMIT 1)
    FROM names n
    ORDER BY n.queue
"""

# The task names of the jobs in the table, sorted: the choices of a list's task filter.
# Reads every row: run only while the table holds few jobs (see dpq_admin.counts).
TASK_NAMES = """
    SELECT DISTINCT task FROM {job_table} ORDER BY task
"""
