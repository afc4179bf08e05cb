"""TCP settings for a worker's connections, so that a dead server or network cut is noticed.

Without them a worker waiting on a server that vanished (a host powered off, a network cut, a
failover that moved the address) waits for the kernel: two hours before the first keepalive,
about 15 minutes of retransmissions, two minutes for a connect. These libpq parameters bound
that to well under a minute. The project's own OPTIONS win: dpq adds only the ones not there.

They are the client's half. The server's half, which frees the rows a lost worker held, is
PostgreSQL's tcp_keepalives_* (and tcp_user_timeout) settings: see the README, "Deploying".
"""

from __future__ import annotations

import os

from django.db import connections

# libpq connection parameters (seconds, tcp_user_timeout in milliseconds): a probe after 10 s
# of silence, every 5 s, and the connection dropped once sent data or probes go unanswered for
# 30 s; a connect attempt gives up after 10 s per host.
WORKER_CONNECTION_DEFAULTS: dict[str, int] = {
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 30000,
    "connect_timeout": 10,
}


def apply_worker_defaults(using: str) -> dict[str, int]:
    """Add the defaults missing from database ``using``'s OPTIONS; return those added.

    Called once by a worker process before it connects: every connection it opens on that
    database (threads, listener, crash accounting, scheduler) reads the same OPTIONS.
    """
    options = connections[using].settings_dict.setdefault("OPTIONS", {})
    added = {
        key: value
        for key, value in WORKER_CONNECTION_DEFAULTS.items()
        if key not in options
    }
    if "PGCONNECT_TIMEOUT" in os.environ:
        added.pop("connect_timeout", None)  # the environment's own setting
    options.update(added)
    return added
