"""Statements of the claim and of a job's run in it: claim, put back, crash accounting.

Plain statements, one per name; see dpq.sql for the rules they follow.
"""

from __future__ import annotations

# The job columns every claim returns, in the order BaseJob.from_claim_row reads them.
# args comes back as text, whichever driver decodes it (Django makes both hand jsonb back as text).
_JOB_COLUMNS = "id, created_at, execute_at, priority, task, args::text, queue, attempts, last_error, failed_at"
_JOB_COLUMNS_OF_J = ", ".join(f"j.{column}" for column in _JOB_COLUMNS.split(", "))


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
# not count a death (see FIND_DEAD_CLAIMS). Rows another worker holds are skipped. After a
# failover, a claim's transaction id may be one the new primary has not reached (its WAL never
# arrived): txid_status() raises for it, so the CASE asks only about ids this server assigned;
# the others never locked a row here.
RELOCK_LOST_CLAIMS = """
    SELECT j.id FROM {job_table} j
    JOIN unnest(%(ids)s::bigint[], %(claim_xids)s::bigint[]) AS t(id, claim_xid) ON t.id = j.id
    WHERE CASE WHEN t.claim_xid < txid_snapshot_xmax(txid_current_snapshot())
               THEN txid_status(t.claim_xid) = 'aborted' END
    FOR UPDATE OF j SKIP LOCKED
"""
