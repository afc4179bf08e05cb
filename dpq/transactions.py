"""The worker's transaction around one claim: transaction.atomic() in two round trips fewer.

With ``transaction.atomic()`` Django turns the driver's autocommit off, and psycopg2 then sends
``BEGIN`` in a round trip of its own before the claim, and ``COMMIT`` in one of its own after
the job's last statement. A job's run is short, so those two round trips are a large part of
it. ``JobTransaction`` keeps the driver in autocommit and sends the text itself, together with
its neighbours: ``BEGIN`` with the first statement of the block (the claim), ``COMMIT`` with
the statement deferred to it (the release of the job's savepoint).

A worker thread goes one step further: ``JobTransaction(using, hold_commit=True)`` does not
send the ``COMMIT`` when the block ends; the connection holds it, and it goes with the next
statement, the next job's ``BEGIN`` and claim. The task's ``SAVEPOINT`` goes with the task's
first statement (``TaskSavepoint``). A job whose task does not use the database then costs
one round trip, the previous job's commit with this one's claim; one that does, none more
than its own statements. A statement sent through Django's cursor in between sends the held
commit first; ``send_held_commit()`` sends it alone, as the worker does before it waits,
stops or closes the connection.

Django's own bookkeeping is set as ``atomic()`` sets it, so that inside the block everything
behaves as it would in ``atomic()``: a nested ``atomic()`` makes a savepoint, ``on_commit()``
callbacks run after the commit (and are dropped on rollback), ``set_rollback()`` rolls back,
``commit()`` and ``set_autocommit()`` are refused, a durable block refuses to nest. A block
entered with a transaction already open, or on a connection not in autocommit, is a plain
``atomic()``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from django.db import DatabaseError, Error, connections, transaction
from psycopg2.extensions import TRANSACTION_STATUS_INTRANS
from psycopg2.extensions import cursor as DriverCursor

from dpq import sql

logger = logging.getLogger(__name__)

# The attribute of a DatabaseWrapper that holds its open JobTransaction.
_ATTRIBUTE = "dpq_job_transaction"
# The attribute of a DatabaseWrapper that holds a commit not sent yet: a HeldCommit.
_HELD = "dpq_held_commit"


def current(using: str) -> JobTransaction | None:
    """The JobTransaction open on this thread's connection ``using``, if any."""
    return open_on(connections[using])


def open_on(connection: Any) -> JobTransaction | None:
    """The JobTransaction open on ``connection`` (a DatabaseWrapper), if any."""
    return getattr(connection, _ATTRIBUTE, None)


def watched(connection: Any, own_wrappers: int = 0) -> bool:
    """Whether something watches the statements sent through Django's cursor of ``connection``.

    The query log (DEBUG, assertNumQueries) or an execute wrapper beyond the
    ``own_wrappers`` dpq itself installed: dpq's own statements then go through Django's
    cursor one by one, so that whoever watches sees each of them.
    """
    return connection.queries_logged or len(connection.execute_wrappers) > own_wrappers


def holds_commit(connection: Any) -> bool:
    """Whether a finished JobTransaction's commit waits on ``connection`` (a DatabaseWrapper)."""
    return hasattr(connection, _HELD)


def send_held_commit(using: str) -> None:
    """Send the commit a finished JobTransaction left on this thread's connection, if any."""
    held: HeldCommit | None = getattr(connections[using], _HELD, None)
    if held is not None:
        held.send_alone()


class HeldCommit:
    """A job's ``RELEASE SAVEPOINT ...; COMMIT``, held to go with the connection's next statement.

    While held it sits in the connection's execute wrappers, so a statement sent through
    Django's cursor carries it in front; the next JobTransaction takes it over instead.
    """

    def __init__(self, connection: Any, statement: str, params: Any) -> None:
        self.connection = connection
        # The transaction lives in this driver connection: closed, it is rolled back.
        self.driver_connection = connection.connection
        self.statement = statement
        self.params = params
        connection.execute_wrappers.append(self._send_in_front)
        setattr(connection, _HELD, self)

    def take(self) -> tuple[str, Any] | None:
        """Forget it here: the caller sends it in front of its own statement.

        None when the connection it was held on is gone (the job's transaction with it).
        """
        self.connection.execute_wrappers.remove(self._send_in_front)
        delattr(self.connection, _HELD)
        if (
            self.connection.connection is not self.driver_connection
            or self.driver_connection.closed
        ):
            logger.warning(
                "A job's commit was held for the connection's next statement, and the "
                "connection closed first: PostgreSQL rolled the job back; it runs again"
            )
            return None
        return self.statement, self.params

    def send_alone(self) -> None:
        held = self.take()
        if held is not None:
            _send(self.connection, *held)

    def _send_in_front(
        self, execute: Any, statement: Any, params: Any, many: bool, context: Any
    ) -> Any:
        held = self.take()
        if held is None:
            return execute(statement, params, many, context)
        if (
            isinstance(statement, str)
            and not many
            and self.driver_connection.autocommit
        ):
            joined = _in_front(*held, statement, params)
            if joined is not None:
                return execute(*joined, many, context)
        _send(self.connection, *held)
        return execute(statement, params, many, context)


def _send(connection: Any, statement: str, params: Any) -> None:
    """Send ``statement`` on the driver's connection as it is, in autocommit.

    With autocommit off (atomic() entered while a commit was held) psycopg2 would send its
    own BEGIN first, and then believe a transaction open that the held COMMIT just ended.
    """
    driver = connection.connection
    autocommit = driver.autocommit
    with connection.wrap_database_errors:
        driver.autocommit = True
        try:
            with driver.cursor() as cursor:
                cursor.execute(statement, params)
        finally:
            driver.autocommit = autocommit


def _in_front(
    first: str, first_params: Any, statement: str, params: Any
) -> tuple[str, Any] | None:
    """``first; statement`` in one text with both statements' parameters, if it can be.

    Both with parameters can only be joined when both name them (as dpq.sql's statements
    do), with different names; None then says to send them one after the other.
    """
    if first_params is None:
        if params is not None:
            first = first.replace("%", "%%")
        return f"{first}; {statement}", params
    if params is None:
        return f"{first}; {statement.replace('%', '%%')}", first_params
    if (
        isinstance(first_params, Mapping)
        and isinstance(params, Mapping)
        and first_params.keys().isdisjoint(params.keys())
    ):
        return f"{first}; {statement}", {**first_params, **params}
    return None


class TaskSavepoint:
    """A task's savepoint, opened with the first statement the task sends, if it sends one.

    A task that never touches the database (an e-mail, an HTTP call, a computation) has no
    writes to roll back, and its savepoint would cost a round trip and a subtransaction for
    nothing. While the task runs, every cursor made on the connection's driver connection
    (Django's, for the ORM, ``connection.cursor()`` and ``atomic()``, and the driver's own,
    ``connection.connection.cursor()``) opens the savepoint before its first statement: in
    the same text when it can, otherwise just before. ``opened`` says whether that happened.

    A cursor this cannot see is one made before the task started, or made with a
    ``cursor_factory`` of the caller's: its statements run outside the savepoint.
    """

    def __init__(self, driver_connection: Any, statement: str) -> None:
        self.driver_connection = driver_connection
        self.statement = statement
        self.opened = False
        self.waiting = True
        self._factory = driver_connection.cursor_factory
        driver_connection.cursor_factory = self._make_cursor

    def _make_cursor(self, connection: Any, name: str | None = None) -> DriverCursor:
        # psycopg2 calls the factory with the name of a named (server-side) cursor only.
        cursor = _TaskCursor(connection, name) if name else _TaskCursor(connection)
        cursor.task_savepoint = self
        return cursor

    def open_before(self, query: Any = None, *, joinable: bool = False) -> Any:
        """Open the savepoint ahead of ``query``; return the text to send for ``query``."""
        self.opened = True
        self.stop_waiting()
        if joinable and isinstance(query, str):
            # The savepoint's text has no "%": joined, the query's parameters still fit.
            return f"{self.statement}; {query}"
        with self.driver_connection.cursor(cursor_factory=DriverCursor) as cursor:
            cursor.execute(self.statement)
        return query

    def stop_waiting(self) -> None:
        """Cursors made from now on are the connection's own again (the task has ended)."""
        if self.waiting:
            self.waiting = False
            self.driver_connection.cursor_factory = self._factory


class _TaskCursor(DriverCursor):
    """A cursor made while a task runs: its first statement opens the task's savepoint."""

    task_savepoint: TaskSavepoint

    def _open(self, query: Any = None, *, joinable: bool = False) -> Any:
        savepoint = self.task_savepoint
        if savepoint.opened or self.closed:
            return query
        # A named cursor sends DECLARE ... FOR query: the savepoint goes on its own.
        return savepoint.open_before(query, joinable=joinable and self.name is None)

    def execute(self, query: Any, vars: Any = None) -> Any:
        return super().execute(self._open(query, joinable=True), vars)

    def executemany(self, query: Any, vars_list: Any) -> Any:
        return super().executemany(self._open(query), vars_list)

    def callproc(self, *args: Any, **kwargs: Any) -> Any:
        self._open()
        return super().callproc(*args, **kwargs)

    def copy_from(self, *args: Any, **kwargs: Any) -> Any:
        self._open()
        return super().copy_from(*args, **kwargs)

    def copy_to(self, *args: Any, **kwargs: Any) -> Any:
        self._open()
        return super().copy_to(*args, **kwargs)

    def copy_expert(self, *args: Any, **kwargs: Any) -> Any:
        self._open()
        return super().copy_expert(*args, **kwargs)


class JobTransaction:
    """``with JobTransaction(using): ...`` is ``with transaction.atomic(using): ...``.

    ``defer(statement, params)`` holds the block's last statement back, to be sent with the
    ``COMMIT``: when the block rolls back it is not sent at all. With ``hold_commit=True``
    a block that commits leaves both, the deferred statement and the ``COMMIT``, to go with
    the connection's next statement (see ``HeldCommit``). It does so only when the
    transaction is not in error (a held ``COMMIT`` would answer ``ROLLBACK`` with nobody to
    hear it; sent at once, it raises) and has no ``on_commit()`` callbacks, which must run
    after the commit and are run at once.
    """

    def __init__(self, using: str, *, hold_commit: bool = False) -> None:
        self.using = using
        self.hold_commit = hold_commit
        self.begun = False
        # A commit held on the connection by the block before: sent with BEGIN.
        self._held: tuple[str, Any] | None = None
        self._deferred: tuple[str, Any] | None = None
        self._atomic: Any = None
        # This thread's DatabaseWrapper for ``using``, once entered.
        self._connection: Any = None
        # Stands for this block in connection.atomic_blocks (read by durable blocks).
        self._marker = transaction.Atomic(using, savepoint=False, durable=False)

    def __enter__(self) -> JobTransaction:
        connection = self._connection = connections[self.using]
        held: HeldCommit | None = getattr(connection, _HELD, None)
        if connection.in_atomic_block or not connection.get_autocommit():
            if held is not None:
                held.send_alone()
            self._atomic = transaction.atomic(using=self.using)
            self._atomic.__enter__()
            return self
        # As atomic() does before it turns autocommit off.
        connection.close_if_health_check_failed()
        connection.ensure_connection()
        if not connection.connection.autocommit:
            if held is not None:
                held.send_alone()
            self._atomic = transaction.atomic(using=self.using)
            self._atomic.__enter__()
            return self
        if held is not None:
            self._held = held.take()
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
            joinable = isinstance(statement, str) and not many
            before, joined = self._begin(statement if joinable else "", params)
            if before is not None:
                with context["connection"].wrap_database_errors:
                    context["cursor"].cursor.execute(*before)
            if joined is not None:
                return execute(*joined, many, context)
        return execute(statement, params, many, context)

    def _begin(
        self, statement: str, params: Any
    ) -> tuple[tuple[str, Any] | None, tuple[str, Any] | None]:
        """The block's first statement: (what to send before it, it joined with BEGIN).

        BEGIN, and in front of it a commit held by the block before, go in one text with
        ``statement`` when their parameters allow (and ``statement`` is not empty).
        """
        self.begun = True
        begin: tuple[str, Any] = (sql.BEGIN_TRANSACTION, None)
        if self._held is not None:
            held_statement, held_params = self._held
            begin = (f"{held_statement}; {sql.BEGIN_TRANSACTION}", held_params)
            self._held = None
        joined = _in_front(*begin, statement, params) if statement else None
        return (None, joined) if joined is not None else (begin, None)

    def fetch_all(self, statement: str, params: Any = None) -> list[tuple]:
        """Run one of dpq's statements in this block; return its rows ([] if it has none).

        The worker's claim and savepoint go straight to the driver's cursor (errors still
        become Django's): Django's cursor wrapper cost a worker thread about 14 µs of CPU per
        job, a seventh of it. Through Django's cursor when something watches the
        connection's statements: the query log (DEBUG, assertNumQueries) or an execute
        wrapper.
        """
        connection = self._connection
        if self._watched():
            with connection.cursor() as cursor:
                cursor.execute(statement, params)
                return cursor.fetchall() if cursor.description else []
        before = None
        if not self.begun:
            before, joined = self._begin(statement, params)
            statement, params = joined or (statement, params)
        with connection.wrap_database_errors:
            cursor = connection.create_cursor()
            try:
                if before is not None:
                    cursor.execute(*before)
                cursor.execute(statement, params)
                return cursor.fetchall() if cursor.description else []
            finally:
                cursor.close()

    def savepoint_for_task(self, statement: str) -> TaskSavepoint | None:
        """The task's savepoint, opened by its first statement (see TaskSavepoint).

        Opened now, and None returned, when something watches the connection's statements
        (as in fetch_all()): the query log and execute wrappers then see it on its own.
        """
        if self._watched():
            self.fetch_all(statement)
            return None
        return TaskSavepoint(self._connection.connection, statement)

    def _watched(self) -> bool:
        # One execute wrapper is this block's own (BEGIN with the first statement).
        return self._atomic is not None or watched(self._connection, 1)

    def defer(self, statement: str, params: Any = None) -> None:
        """Send ``statement`` with the commit (at once when this block is a plain atomic()).

        Only the last deferred statement waits: one deferred before it is sent now.
        """
        earlier, self._deferred = self._deferred, (statement, params)
        if self._atomic is not None or not self.begun:
            earlier, self._deferred = (statement, params), None
        if earlier is not None:
            with self._connection.cursor() as cursor:
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
        connection = self._connection
        connection.execute_wrappers.remove(self._begin_with_first_statement)
        delattr(connection, _ATTRIBUTE)
        connection.atomic_blocks.pop()
        # Unset first, as atomic() does, so that commit hooks and close() see no block.
        connection.in_atomic_block = False
        committed = False
        try:
            if self._held is not None:
                # Nothing was sent in this block: the commit held before it goes alone.
                held, self._held = self._held, None
                _send(connection, *held)
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
        if (
            self.hold_commit
            and not connection.run_on_commit
            # Not in error: a held COMMIT of an aborted transaction would answer ROLLBACK
            # with nobody to tell (sent now, it raises below).
            and connection.connection.info.transaction_status
            == TRANSACTION_STATUS_INTRANS
        ):
            HeldCommit(
                connection,
                f"{statement}; {sql.COMMIT_TRANSACTION}"
                if statement
                else sql.COMMIT_TRANSACTION,
                params,
            )
            connection.errors_occurred = False
            return
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
            # On the driver, as atomic() rolls back: Django refuses statements on a
            # connection marked needs_rollback, which is why this one is sent.
            _send(connection, sql.ROLLBACK_TRANSACTION, None)
            connection.errors_occurred = False
        except Error:
            logger.debug("Rolling back the job's transaction failed", exc_info=True)
            connection.close()
