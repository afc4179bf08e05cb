"""The PostgreSQL driver Django uses (psycopg 3 or psycopg2), behind the few names dpq needs.

Django takes psycopg 3 whenever it can import it, else psycopg2; dpq follows the same choice,
so it never imports a driver the project does not run. Errors raised through Django's cursors
are Django's (``django.db.DatabaseError``); the names here are for the connections dpq opens
itself (the listener, the crash-accounting connection), which raise the driver's own errors.
"""

from __future__ import annotations

import select
import weakref
from typing import Any

from django.db.backends.postgresql.psycopg_any import is_psycopg3

if is_psycopg3:
    import psycopg as _driver
    from psycopg import errors, sql
else:
    import psycopg2 as _driver
    from psycopg2 import errors, sql

__all__ = [
    "Error",
    "InterfaceError",
    "OperationalError",
    "binds_server_side",
    "connect",
    "error_message",
    "errors",
    "is_psycopg3",
    "name",
    "received_notifies",
    "sql",
    "sqlstate",
    "wait_for_notifies",
]

name = "psycopg" if is_psycopg3 else "psycopg2"
Error = _driver.Error
OperationalError = _driver.OperationalError
InterfaceError = _driver.InterfaceError

# psycopg 3 hands out notifications through a generator and keeps none of them afterwards:
# what dpq has read but not used yet (another queue's channel) waits here, per connection.
_unread: weakref.WeakKeyDictionary[Any, list] = weakref.WeakKeyDictionary()


def connect(url: str) -> Any:
    """A new driver connection to ``url`` (a ``postgres://`` URL or a libpq conninfo)."""
    return _driver.connect(url)


def binds_server_side(wrapper: Any) -> bool:
    """Whether Django's cursors on ``wrapper`` bind parameters on the server.

    Only psycopg 3 does, when the database's OPTIONS ask for ``server_side_binding``; a
    utility statement such as EXECUTE then cannot take parameters.
    """
    return (
        is_psycopg3
        and wrapper.settings_dict["OPTIONS"].get("server_side_binding") is True
    )


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error, or of the driver error Django wrapped, if any."""
    cause = exc.__cause__ or exc
    # psycopg2 names it pgcode, psycopg 3 sqlstate.
    return getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)


def error_message(exc: BaseException) -> str:
    """The whole message of ``exc`` on one line, for a log record.

    libpq's message for a failed connection has a line per host it tried (the reason of
    each: refused, read-only, timed out), each followed by indented hints: the hints join
    their line, the hosts are separated by "; ".
    """
    parts: list[str] = []
    for line in str(exc).splitlines():
        if not line.strip():
            continue
        if line[:1].isspace() and parts:
            parts[-1] += " " + line.strip()
        else:
            parts.append(line.strip())
    return "; ".join(parts) or type(exc).__name__


def received_notifies(raw: Any) -> list:
    """The notifications ``raw`` has received so far, without waiting.

    The list is the connection's own: what the caller removes from it is gone, what it leaves
    is returned again next time (psycopg2's ``connection.notifies`` behaves so).
    """
    if is_psycopg3:
        unread = _unread.setdefault(raw, [])
        unread.extend(raw.notifies(timeout=0))
        return unread
    raw.poll()
    return raw.notifies


def wait_for_notifies(raw: Any, timeout: float) -> None:
    """Wait up to ``timeout`` seconds for ``raw`` to receive a notification.

    Returns as soon as anything arrives; read what came with received_notifies().
    """
    if is_psycopg3:
        arrived = raw.notifies(timeout=timeout, stop_after=1)
        _unread.setdefault(raw, []).extend(arrived)
    else:
        select.select([raw], [], [], timeout)
