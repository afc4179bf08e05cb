"""Statements behind "Why is this job not running?" on a job's page.

Plain statements, one per name; see dpq.sql for the rules they follow. They read and take
no locks beyond a plain SELECT's.
"""

from __future__ import annotations

# How many ready jobs of the job's queue a worker claims before it: higher priority, or the
# same priority and due earlier (then lower id), in the claim's order, through
# dpq_job_claim_idx. Stops at %(limit)s. One row, one count.
JOBS_AHEAD = """
    SELECT count(*) FROM (
        SELECT 1 FROM {job_table}
        WHERE queue = %(queue)s AND failed_at IS NULL AND execute_at <= now()
          AND id <> %(job_id)s
          AND (priority > %(priority)s
               OR (priority = %(priority)s
                   AND (execute_at, id) < (%(execute_at)s, %(job_id)s)))
        LIMIT %(limit)s
    ) AS ahead
"""

# How many jobs of a queue are ready now (what a delayed job will wait behind, at the
# least, when it is due). Stops at %(limit)s. One row, one count.
READY_IN_QUEUE = """
    SELECT count(*) FROM (
        SELECT 1 FROM {job_table}
        WHERE queue = %(queue)s AND failed_at IS NULL AND execute_at <= now()
        LIMIT %(limit)s
    ) AS ready
"""
