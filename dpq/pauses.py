"""Pause and resume a queue: its workers stop claiming, the jobs running finish.

A pause is a row of ``dpq_queuepause``, so it outlives worker and server restarts; its
trigger notifies ``dpq_pause`` and each worker also reads it at every idle check (the
fallback when a notification is missed). The claim itself never reads the table.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS

from dpq import sql


@dataclass(frozen=True)
class Pause:
    """A paused queue: since when, and who paused it ("" when not said)."""

    queue: str
    paused_at: datetime.datetime
    paused_by: str


def pause_queue(name: str, *, by: str = "", using: str = DEFAULT_DB_ALIAS) -> bool:
    """Pause the queue ``name``; False when it was paused already (the first pause stays).

    Committed with the caller's transaction (at once in autocommit): its workers stop
    claiming when they are notified, within their idle check (``--delay``) at the latest.
    """
    params = {"queue": name, "paused_by": by[:200]}
    return bool(sql.fetch_all(using, sql.PAUSE_QUEUE, params))


def resume_queue(name: str, *, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Resume the queue ``name``; False when it was not paused."""
    return bool(sql.fetch_all(using, sql.RESUME_QUEUE, {"queue": name}))


def queue_pause(name: str, *, using: str = DEFAULT_DB_ALIAS) -> Pause | None:
    """The queue's pause, or None when it is not paused."""
    row = sql.fetch_one(using, sql.QUEUE_PAUSE, {"queue": name})
    return Pause(name, *row) if row else None


def paused_queues(*, using: str = DEFAULT_DB_ALIAS) -> dict[str, Pause]:
    """Every paused queue by name."""
    return {row[0]: Pause(*row) for row in sql.fetch_all(using, sql.PAUSED_QUEUES)}
