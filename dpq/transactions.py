"""The worker's transaction around one claim: transaction.atomic() in two round trips fewer.

With ``transaction.atomic()`` Django turns the driver's autocommit off, and psycopg2 then sends
``BEGIN`` in a round trip of its own before the claim, and ``COMMIT`` in one of its own after
the job's last statement. A job's run is short, so those two round trips are a large part of
it. ``JobTransaction`` keeps the driver in autocommit and sends the text itself, together with
its neighbours: ``BEGIN`` with the first statement of the block (the claim), ``COMMIT`` with
the statement deferred to it (the release of the job's savepoint).

Django's own bookkeeping is set as ``atomic()`` sets it, so that inside the block everything
behaves as it would in ``atomic()``: a nested ``atomic()`` makes a savepoint, ``on_commit()``
callbacks run after the commit (and are dropped on rollback), ``set_rollback()`` rolls back,
``commit()`` and ``set_autocommit()`` are refused, a durable block refuses to nest. A block
entered with a transaction already open, or on a connection not in autocommit, is a plain
``atomic()``.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from django.db import DatabaseError, Error, connections, transaction

from dpq import sql

logger = logging.getLogger(__name__)

# The attribute of a DatabaseWrapper that holds its open JobTransaction.
_ATTRIBUTE = "dpq_job_transaction"


def current(using: str) -> JobTransaction | None:
    """The JobTransaction open on this thread's connection ``using``, if any."""
    return getattr(connections[using], _ATTRIBUTE, None)


class JobTransaction:
    """``with JobTransaction(using): ...`` is ``with transaction.atomic(using): ...``.

    ``defer(statement, params)`` holds the block's last statement back, to be sent with the
    ``COMMIT``: when the block rolls back it is not sent at all.
    """

    def __init__(self, using: str) -> None:
        self.using = using
        self.begun = False
        self._deferred: tuple[str, Any] | None = None
        self._atomic: Any = None
        # Stands for this block in connection.atomic_blocks (read by durable blocks).
        self._marker = transaction.Atomic(using, savepoint=False, durable=False)

    def __enter__(self) -> JobTransaction:
        connection = connections[self.using]
        if connection.in_atomic_block or not connection.get_autocommit():
            self._atomic = transaction.atomic(using=self.using)
            self._atomic.__enter__()
            return self
        # As atomic() does before it turns autocommit off.
        connection.close_if_health_check_failed()
        connection.ensure_connection()
        if not connection.connection.autocommit:
            self._atomic = transaction.atomic(using=self.using)
            self._atomic.__enter__()
            return self
        connection.commit_on_exit = True
        connection.needs_rollback = False
        connection.autocommit = False  # Django's view; the driver stays in autocommit
        connection.in_atomic_block = True
        connection.atomic_blocks.append(self._marker)
        connection.execute_wrappers.append(self._begin_with_first_statement)
        setattr(connection, _ATTRIBUTE, self)
        return self

    def _begin_with_first_statement(
        self, execute: Any, statement: Any, params: Any, many: bool, context: Any
    ) -> Any:
        if not self.begun:
            self.begun = True
            if isinstance(statement, str) and not many:
                return execute(
                    f"{sql.BEGIN_TRANSACTION}; {statement}", params, many, context
                )
            context["cursor"].cursor.execute(sql.BEGIN_TRANSACTION)
        return execute(statement, params, many, context)

    def defer(self, statement: str, params: Any = None) -> None:
        """Send ``statement`` with the commit (at once when this block is a plain atomic()).

        Only the last deferred statement waits: one deferred before it is sent now.
        """
        earlier, self._deferred = self._deferred, (statement, params)
        if self._atomic is not None or not self.begun:
            earlier, self._deferred = (statement, params), None
        if earlier is not None:
            with connections[self.using].cursor() as cursor:
                cursor.execute(*earlier)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._atomic is not None:
            self._atomic.__exit__(exc_type, exc_value, traceback)
            return
        connection = connections[self.using]
        connection.execute_wrappers.remove(self._begin_with_first_statement)
        delattr(connection, _ATTRIBUTE)
        connection.atomic_blocks.pop()
        # Unset first, as atomic() does, so that commit hooks and close() see no block.
        connection.in_atomic_block = False
        committed = False
        try:
            if connection.closed_in_transaction:
                pass
            elif exc_type is None and not connection.needs_rollback:
                if self.begun:
                    self._commit(connection)
                committed = True
            elif self.begun:
                self._rollback(connection)
        finally:
            self._deferred = None
            connection.needs_rollback = False
            connection.autocommit = True
            if connection.closed_in_transaction:
                connection.connection = None
            if not committed:
                connection.run_on_commit = []
        if committed:
            connection.run_and_clear_commit_hooks()

    def _commit(self, connection: Any) -> None:
        statement, params = self._deferred or ("", None)
        self._deferred = None
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"{statement}; {sql.COMMIT_TRANSACTION}"
                    if statement
                    else sql.COMMIT_TRANSACTION,
                    params,
                )
                status = cursor.cursor.statusmessage
            if status != sql.COMMIT_TRANSACTION:
                # COMMIT of a transaction in error answers ROLLBACK instead of failing.
                raise DatabaseError(
                    f"the job's transaction was rolled back at commit ({status}): an "
                    "error inside it was caught without rolling back to a savepoint"
                )
            connection.errors_occurred = False
        except DatabaseError:
            self._rollback(connection)
            raise

    def _rollback(self, connection: Any) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql.ROLLBACK_TRANSACTION)
            connection.errors_occurred = False
        except Error:
            logger.debug("Rolling back the job's transaction failed", exc_info=True)
            connection.close()
