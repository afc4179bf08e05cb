"""Statements of Django's Tasks framework backend (dpq.tasks): results, and the status probe.

Plain statements, one per name; see dpq.sql for the rules they follow.
"""

from __future__ import annotations

# Record one attempt of a task in its result row, inside the job's transaction: a success
# (status SUCCESSFUL and the return value) or a failure (%(error)s, a one-element array, and
# status READY while attempts remain, else FAILED). The first attempt's row is inserted; a
# later one appends its worker id and error to those of the attempts before it, and keeps
# the first start time. %(error)s is '[]' for a success.
RECORD_TASK_ATTEMPT = """
    INSERT INTO {task_result_table} AS r
        (job_id, backend, queue_name, task_path, priority, args, kwargs, status,
         return_value, errors, worker_ids, enqueued_at, started_at, last_attempted_at,
         finished_at)
    VALUES (%(id)s, %(backend)s, %(queue_name)s, %(task_path)s, %(priority)s,
            %(args)s::jsonb, %(kwargs)s::jsonb, %(status)s, %(return_value)s::jsonb,
            %(error)s::jsonb, %(worker_ids)s::jsonb, %(enqueued_at)s, %(started_at)s,
            %(started_at)s, %(finished_at)s)
    ON CONFLICT (job_id) DO UPDATE
        SET status = EXCLUDED.status,
            return_value = EXCLUDED.return_value,
            errors = r.errors || EXCLUDED.errors,
            worker_ids = r.worker_ids || EXCLUDED.worker_ids,
            started_at = COALESCE(r.started_at, EXCLUDED.started_at),
            last_attempted_at = COALESCE(EXCLUDED.last_attempted_at, r.last_attempted_at),
            finished_at = EXCLUDED.finished_at
"""

# The attempts before this one of a job being retried: their errors, worker ids and first
# start (the task's context counts them).
TASK_ATTEMPTS = """
    SELECT errors::text, worker_ids::text, started_at FROM {task_result_table}
    WHERE job_id = %(id)s
"""

# What get_result() reports of one id: the job row if it is still in the table (queued,
# delayed, running or failed) and the result row (the attempts so far, or the outcome),
# read in one snapshot, so that a job that finishes meanwhile is seen on one side only.
#
# Running: a worker's claim has deleted the row in a transaction still open. Told without
# waiting and without writing: the row's xmax is that transaction's id, and the commit log
# says it is in progress. (A lock taken here instead, FOR KEY SHARE SKIP LOCKED, would
# replace the xmax of a claim that died with its worker, which crash accounting reads.)
# xmax is 32 bits: widened against the snapshot's next transaction id, as FIND_DEAD_CLAIMS
# does against its own. The holder's pg_stat_activity row names the worker and when its
# transaction started, for a running job only.
TASK_RESULT = """
    SELECT j.id IS NOT NULL, j.task, j.args::text, j.queue, j.priority, j.created_at,
           j.execute_at, j.attempts, j.last_error, j.failed_at, h.running,
           CASE WHEN h.running THEN (
               SELECT a.application_name FROM pg_stat_activity a
               WHERE a.backend_xid = j.xmax LIMIT 1) END,
           CASE WHEN h.running THEN (
               SELECT a.xact_start FROM pg_stat_activity a
               WHERE a.backend_xid = j.xmax LIMIT 1) END,
           r.job_id IS NOT NULL, r.backend, r.queue_name, r.task_path, r.priority,
           r.args::text, r.kwargs::text, r.status, r.return_value::text, r.errors::text,
           r.worker_ids::text, r.enqueued_at, r.started_at, r.last_attempted_at,
           r.finished_at, clock_timestamp()
    FROM (SELECT %(id)s::bigint AS id) k
    LEFT JOIN {job_table} j ON j.id = k.id
    LEFT JOIN {task_result_table} r ON r.job_id = k.id
    CROSS JOIN LATERAL (
        SELECT j.xmax::text::bigint <> 0 AND txid_status(
            GREATEST(0, n.next - ((n.next - j.xmax::text::bigint) %% 4294967296
                                  + 4294967296) %% 4294967296)) = 'in progress'
        FROM (SELECT txid_snapshot_xmax(txid_current_snapshot()) AS next) n
    ) AS h(running)
"""

# Forget the results that finished before the cutoff (the retention period), of jobs no
# longer in the job table, a batch at a time (ordered by finished_at on its index); rows
# another prune is deleting are skipped, not waited for.
PRUNE_TASK_RESULTS = """
    DELETE FROM {task_result_table}
    WHERE job_id IN (
        SELECT r.job_id FROM {task_result_table} r
        WHERE r.backend = %(backend)s AND r.finished_at < %(cutoff)s
          AND NOT EXISTS (SELECT 1 FROM {job_table} j WHERE j.id = r.job_id)
        ORDER BY r.finished_at
        LIMIT %(limit)s
        FOR UPDATE OF r SKIP LOCKED
    )
"""
