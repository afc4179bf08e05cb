"""Statements of paused queues: pause, resume, and what workers and the dashboard read.

Plain statements, one per name; see dpq.sql for the rules they follow. The table's trigger
(migration 0007) sends NOTIFY dpq_pause with the queue's name on every change.
"""

from __future__ import annotations

# The channel the pause table's trigger notifies; every worker listens on it.
PAUSE_CHANNEL = "dpq_pause"

# Pause a queue; pausing a paused queue keeps its first pause. Returns a row when it was not
# paused before.
PAUSE_QUEUE = """
    INSERT INTO {pause_table} (queue, paused_at, paused_by)
    VALUES (%(queue)s, now(), %(paused_by)s)
    ON CONFLICT (queue) DO NOTHING
    RETURNING queue
"""

# Resume a queue. Returns a row when it was paused.
RESUME_QUEUE = """
    DELETE FROM {pause_table} WHERE queue = %(queue)s RETURNING queue
"""

# Whether a queue is paused: since when and by whom, or no row. A worker runs it at each idle
# check, outside its claims.
QUEUE_PAUSE = """
    SELECT paused_at, paused_by FROM {pause_table} WHERE queue = %(queue)s
"""

# Every paused queue, for the dashboard.
PAUSED_QUEUES = """
    SELECT queue, paused_at, paused_by FROM {pause_table} ORDER BY queue
"""
