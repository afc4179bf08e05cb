"""The worker's background prune of a DpqBackend's expired results (OPTION prune_interval).

A thread of each long-running ``dpq_worker --backend`` process: every ``prune_interval``
seconds (spread by ±10 %, the first time at a random point of the first interval, so that
the processes of a deployment do not prune together) it deletes the results past
``result_retention`` in batches of PRUNE_BATCH, pausing between batches and on its own
connection, which it closes after each round. It never touches a claim; a failed round is
logged and tried again at the next interval.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import TYPE_CHECKING

from django.db import connections

from dpq import sql
from dpq.threads import application_name

if TYPE_CHECKING:
    from dpq.tasks.backend import DpqBackend

logger = logging.getLogger("dpq.worker")

PRUNE_BATCH = 500
# Seconds between two batches of one round: other work gets the server in between.
PAUSE = 0.2


class ResultPruner(threading.Thread):
    """Deletes the expired results of ``backend`` until ``stopping`` is set."""

    def __init__(
        self,
        backend: DpqBackend,
        queue_name: str,
        stopping: threading.Event,
        interval: float,
    ) -> None:
        super().__init__(name=f"dpq-prune-{backend.alias}", daemon=True)
        self.backend = backend
        self.queue_name = queue_name
        self.stopping = stopping
        self.interval = interval

    def run(self) -> None:
        wait = self.interval * random.uniform(0.1, 1.0)
        while not self.stopping.wait(wait):
            self.prune_round()
            wait = self.interval * random.uniform(0.9, 1.1)

    def prune_round(self) -> int:
        """Delete every result past the retention, a batch at a time; return how many."""
        deleted = 0
        try:
            cutoff = self.backend.prune_cutoff()
            if cutoff is None:
                return 0
            sql.execute(
                self.backend.using,
                sql.SET_APPLICATION_NAME,
                {"name": application_name(self.queue_name, "prune")},
            )
            while not self.stopping.is_set():
                count = self.backend.prune_batch(cutoff, PRUNE_BATCH)
                deleted += count
                if count < PRUNE_BATCH:
                    break
                self.stopping.wait(PAUSE)
        except Exception:
            logger.warning(
                "Pruning the results of tasks backend %r failed; trying again in %ss",
                self.backend.alias,
                self.interval,
                exc_info=True,
            )
        finally:
            connections[self.backend.using].close()
        if deleted:
            logger.info(
                "Pruned %s result(s) of tasks backend %r older than %s",
                deleted,
                self.backend.alias,
                self.backend.result_retention,
                extra={"queue": self.queue_name},
            )
        return deleted
