"""Queues: enqueue jobs, claim and run them, LISTEN/NOTIFY wake-ups."""

from __future__ import annotations

import datetime
import json
import logging
import os
import select
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.utils import timezone
from psycopg2.errorcodes import DUPLICATE_PREPARED_STATEMENT, INVALID_SQL_STATEMENT_NAME
from psycopg2.extensions import TRANSACTION_STATUS_INERROR as TRANSACTION_IN_ERROR

from dpq import exceptions, signals, sql, transactions
from dpq.models import PRIORITY_MAX, PRIORITY_MIN, BaseJob, Job, JSONValue
from dpq.retry import RetryPolicy, decide
from dpq.starts import StartCount, StartRecorder

# The attribute of a thread's DatabaseWrapper naming the claim prepared on its connection:
# (the driver connection it was prepared on, the EXECUTE statement).
_PREPARED_CLAIM = "dpq_prepared_claim"

if TYPE_CHECKING:
    from dpq.retry import Backoff

logger = logging.getLogger(__name__)

Task = Callable[["Queue", BaseJob], Any]
RunResult = tuple[BaseJob, Any, BaseException | None]

# LISTEN truncates longer channel names and pg_notify() rejects them, which would break
# every enqueue: refuse them when the queue is built.
MAX_CHANNEL_BYTES = 63
MAX_QUEUE_NAME_LENGTH = 100
# Read once: worker_name is built for every job a worker starts.
HOSTNAME = socket.gethostname()


def validate_channel(channel: str | None) -> str | None:
    """Return the channel if PostgreSQL can LISTEN on it, else raise InvalidChannelError."""
    if channel is None:
        return None
    if not isinstance(channel, str):
        raise exceptions.InvalidChannelError(
            f"notify_channel must be a string or None, got {type(channel).__name__} {channel!r}"
        )
    if not channel:
        raise exceptions.InvalidChannelError(
            "notify_channel must not be empty; pass None to work without LISTEN/NOTIFY"
        )
    size = len(channel.encode())
    if size > MAX_CHANNEL_BYTES:
        raise exceptions.InvalidChannelError(
            f"notify_channel {channel!r} is {size} bytes long; PostgreSQL channel names are at "
            f"most {MAX_CHANNEL_BYTES} bytes: choose a shorter name"
        )
    if "\x00" in channel:
        raise exceptions.InvalidChannelError(
            "notify_channel must not contain a NUL character"
        )
    return channel


class Queue:
    """A named queue of jobs in the job table, and the tasks that can run them.

    ``tasks`` maps task names to functions ``fn(queue, job)``. Several queues share one table;
    a queue only ever claims jobs with its own ``name``.
    """

    at_most_once = False
    job_model: type[BaseJob] = Job
    logger = logger

    def __init__(
        self,
        tasks: Mapping[str, Task],
        notify_channel: str | None = None,
        *,
        name: str = "default",
        max_attempts: int = 3,
        backoff: Backoff | None = None,
        retry_policies: Mapping[str, RetryPolicy] | None = None,
        crash_limit: int | None = 3,
        notify_on_enqueue: bool = True,
        using: str = DEFAULT_DB_ALIAS,
    ) -> None:
        if not isinstance(tasks, Mapping):
            raise exceptions.QueueConfigurationError(
                f"tasks must be a dict of task name -> function, got {type(tasks).__name__}"
            )
        for task_name, fn in tasks.items():
            if not callable(fn):
                raise exceptions.QueueConfigurationError(
                    f"task {task_name!r} is {fn!r}, not a function taking (queue, job)"
                )
        if not isinstance(name, str) or not name or len(name) > MAX_QUEUE_NAME_LENGTH:
            raise exceptions.QueueConfigurationError(
                f"queue name must be a non-empty string of at most {MAX_QUEUE_NAME_LENGTH} "
                f"characters, got {name!r}"
            )
        if crash_limit is not None and (
            isinstance(crash_limit, bool)
            or not isinstance(crash_limit, int)
            or crash_limit < 1
        ):
            raise exceptions.QueueConfigurationError(
                f"crash_limit must be an integer >= 1, or None to turn crash accounting off; "
                f"got {crash_limit!r}"
            )
        self.tasks = dict(tasks)
        self.notify_channel = validate_channel(notify_channel)
        self.name = name
        self.retry_policy = (
            RetryPolicy(max_attempts)
            if backoff is None
            else RetryPolicy(max_attempts, backoff)
        )
        self.retry_policies = dict(retry_policies or {})
        for task_name, policy in self.retry_policies.items():
            if not isinstance(policy, RetryPolicy):
                raise exceptions.QueueConfigurationError(
                    f"retry_policies[{task_name!r}] must be a dpq.retry.RetryPolicy, got {policy!r}"
                )
        self.crash_limit = crash_limit
        self.notify_on_enqueue = notify_on_enqueue
        self.using = using
        self._start_recorder: StartRecorder | None = None
        self._prepare_claims = True
        self._recorder_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.name!r} tasks={sorted(self.tasks)} "
            f"notify_channel={self.notify_channel!r}>"
        )

    @property
    def job_table(self) -> str:
        return self.job_model._meta.db_table

    @property
    def worker_name(self) -> str:
        """``host:pid`` of this process, as start records name the worker of a job.

        Not fixed when the queue is built: under --processes the queue is imported before the
        fork, and each worker process must name itself, not the supervisor.
        """
        return f"{HOSTNAME}:{os.getpid()}"

    @property
    def has_crash_accounting(self) -> bool:
        return self.crash_limit is not None and not self.at_most_once

    # --- Enqueue ------------------------------------------------------------------------

    def enqueue(
        self,
        task: str,
        args: JSONValue = None,
        execute_at: datetime.datetime | None = None,
        priority: int | None = None,
    ) -> BaseJob:
        """Add a job and return it.

        The row is written in the caller's transaction (or committed at once in autocommit):
        a job enqueued in a transaction that rolls back never existed. Listeners are notified
        when that transaction commits.
        """
        params = self._validated(
            task, {} if args is None else args, execute_at, priority
        )
        statement = sql.INSERT_JOB
        if self.notify_channel and self.notify_on_enqueue:
            statement = sql.INSERT_JOB_AND_NOTIFY
            params["channel"] = self.notify_channel
        row = sql.fetch_one(self.using, statement, params, job_table=self.job_table)
        job = self.job_model.from_claim_row(row)
        signals.job_enqueued.send(sender=type(self), queue=self, job=job)
        return job

    def enqueue_many(self, items: Iterable[tuple | Mapping[str, Any]]) -> list[int]:
        """Add many jobs with one INSERT and at most one NOTIFY; return their ids in order.

        Each item is ``(task, args)`` or a dict with ``task`` and optionally ``args``,
        ``execute_at`` and ``priority``. Every item is checked before anything is written:
        one bad item raises and no job is added.
        """
        rows = [
            self._validated(**self._item_fields(n, item))
            for n, item in enumerate(items)
        ]
        if not rows:
            return []
        params = {
            "queue": self.name,
            "tasks": [r["task"] for r in rows],
            "args": [r["args"] for r in rows],
            "priorities": [r["priority"] for r in rows],
            "execute_ats": [r["execute_at"] for r in rows],
        }
        with transaction.atomic(using=self.using):
            created = sql.fetch_all(
                self.using, sql.INSERT_JOBS, params, job_table=self.job_table
            )
            if self.notify_channel and self.notify_on_enqueue:
                self.notify()
        return [row[0] for row in created]

    @staticmethod
    def _item_fields(n: int, item: tuple | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(item, Mapping):
            unknown = set(item) - {"task", "args", "execute_at", "priority"}
            if "task" not in item or unknown:
                raise exceptions.InvalidJobError(
                    f"enqueue_many item {n} must have a 'task' key and only 'args', 'execute_at', "
                    f"'priority' besides; got keys {sorted(item)}"
                )
            fields = dict(item)
            fields.setdefault("args", {})
            return fields
        if isinstance(item, tuple) and len(item) == 2:
            return {"task": item[0], "args": item[1]}
        raise exceptions.InvalidJobError(
            f"enqueue_many item {n} must be a (task, args) tuple or a dict, got {item!r}"
        )

    def _validated(
        self,
        task: str,
        args: JSONValue,
        execute_at: datetime.datetime | None = None,
        priority: int | None = None,
    ) -> dict[str, Any]:
        """Check one job's fields and return them as statement parameters."""
        if task not in self.tasks:
            known = ", ".join(sorted(self.tasks)) or "none"
            raise exceptions.TaskNotRegisteredError(
                f"cannot enqueue {task!r}: queue {self.name!r} has no task by that name "
                f"(known: {known}); add it to tasks={{...}}"
            )
        try:
            encoded = json.dumps(args, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise exceptions.InvalidArgsError(
                f"cannot enqueue {task!r}: args must be JSON-serializable ({exc}); pass only "
                f"dicts, lists, strings, numbers, booleans and None, e.g. a date as .isoformat()"
            ) from exc
        if "\\u0000" in encoded:
            raise exceptions.InvalidArgsError(
                f"cannot enqueue {task!r}: args contain a NUL character (\\x00), which "
                f"PostgreSQL's jsonb cannot store; remove it or encode the value (e.g. base64)"
            )
        if execute_at is not None:
            if not isinstance(execute_at, datetime.datetime):
                raise exceptions.InvalidJobError(
                    f"cannot enqueue {task!r}: execute_at must be a datetime, "
                    f"got {type(execute_at).__name__} {execute_at!r}"
                )
            if settings.USE_TZ and timezone.is_naive(execute_at):
                raise exceptions.InvalidJobError(
                    f"cannot enqueue {task!r}: execute_at {execute_at.isoformat()} has no time "
                    f"zone while USE_TZ is on; use django.utils.timezone.now() + timedelta(...) "
                    f"or make_aware()"
                )
        if priority is None:
            priority = 0
        elif isinstance(priority, bool) or not isinstance(priority, int):
            raise exceptions.InvalidJobError(
                f"cannot enqueue {task!r}: priority must be an integer, "
                f"got {type(priority).__name__} {priority!r}"
            )
        elif not PRIORITY_MIN <= priority <= PRIORITY_MAX:
            raise exceptions.InvalidJobError(
                f"cannot enqueue {task!r}: priority {priority} is out of range "
                f"({PRIORITY_MIN} to {PRIORITY_MAX})"
            )
        return {
            "task": task,
            "args": encoded,
            "execute_at": execute_at,
            "priority": priority,
            "queue": self.name,
        }

    # --- LISTEN / NOTIFY ------------------------------------------------------------------

    def listen(self) -> None:
        """LISTEN on the queue's channel with this thread's connection."""
        channel = self._require_channel("listen")
        connection = connections[self.using]
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute(
                sql.listen_statement(channel).as_string(connection.connection)
            )

    def wait(self, timeout: float = 30) -> list:
        """Wait up to ``timeout`` seconds for notifications; return those of this channel."""
        connection = connections[self.using]
        connection.ensure_connection()
        raw = connection.connection
        raw.poll()
        notifies = self.filter_notifies()
        if notifies:
            return notifies
        select.select([raw], [], [], timeout)
        raw.poll()
        return self.filter_notifies()

    def filter_notifies(self) -> list:
        raw = connections[self.using].connection
        mine = [n for n in raw.notifies if n.channel == self.notify_channel]
        raw.notifies[:] = [n for n in raw.notifies if n.channel != self.notify_channel]
        return mine

    def notify(self, job: BaseJob | None = None) -> None:
        """Wake the queue's listeners (delivered when the current transaction commits)."""
        channel = self._require_channel("notify")
        sql.execute(self.using, sql.NOTIFY, {"channel": channel})

    def _require_channel(self, what: str) -> str:
        if not self.notify_channel:
            raise exceptions.QueueConfigurationError(
                f"cannot {what}: queue {self.name!r} has no notify_channel; "
                f"build it with notify_channel='...'"
            )
        return self.notify_channel

    # --- Claim and run --------------------------------------------------------------------

    def claim(
        self, *, limit: int = 1, exclude_ids: Iterable[int] = ()
    ) -> list[BaseJob]:
        """Claim up to ``limit`` ready jobs of this queue (deleted, locked until commit)."""
        statement = sql.CLAIM_JOB if limit == 1 else sql.CLAIM_JOBS
        connection = connections[self.using]
        prepared = getattr(connection, _PREPARED_CLAIM, None)
        if limit == 1 and prepared is not None and prepared[0] is connection.connection:
            statement = prepared[1]
        params = {"queue": self.name, "exclude_ids": list(exclude_ids), "limit": limit}
        job_transaction = transactions.open_on(connection)
        try:
            if job_transaction is not None:
                rows = job_transaction.fetch_all(
                    sql.render(statement, self.job_table), params
                )
            else:
                rows = sql.fetch_all(
                    self.using, statement, params, job_table=self.job_table
                )
        except DatabaseError as exc:
            if getattr(exc.__cause__, "pgcode", None) == INVALID_SQL_STATEMENT_NAME:
                self._lost_prepared_claim(connection)
            raise
        jobs = self._claimed(rows)
        if len(jobs) > 1:
            jobs.sort(key=lambda job: (-job.priority, job.execute_at, job.id))
        if jobs and self.logger.isEnabledFor(logging.DEBUG):
            for job in jobs:
                self.logger.debug(
                    "Claimed job %s (%s)", job.id, job.task, extra=self._log_extra(job)
                )
        return jobs

    def run_once(self, exclude_ids: Iterable[int] = ()) -> RunResult | None:
        """Claim one job and run it; return None, or ``(job, retval, exc)``."""
        raise NotImplementedError

    def run_job(self, job: BaseJob) -> Any:
        """Call the job's task and return what it returns (raises what it raises)."""
        return self.tasks[job.task](self, job)

    def process_job(self, job: BaseJob, *, solo: bool = True) -> RunResult:
        """Run a claimed job in the current transaction and record its outcome.

        The task runs in a savepoint: if it raises, its writes are rolled back and the job is
        put back with one more attempt (retried later or marked failed). ``solo`` says that no
        other job runs in this process meanwhile: only solo starts count towards crash_limit.
        """
        refusal = self._refusal(job)
        if refusal is not None:
            self._put_back(job, refusal, give_up=True, error_text=str(refusal))
            return job, None, refusal
        connection = connections[self.using]
        # A claim already committed leaves no trace if the worker dies: count the start now.
        # So does a solo start: only those count towards crash_limit. A start beside other
        # jobs is not written: if the worker dies, the next claim finds its claim rolled back.
        claim_committed = self.at_most_once or not connection.in_atomic_block
        recorded = self.has_crash_accounting and (solo or claim_committed)
        if recorded:
            self.start_recorder.record(
                [
                    StartCount(
                        job.id, 1, int(solo), None if claim_committed else job.claim_xid
                    )
                ],
                worker=self.worker_name,
            )
        clear_start = recorded or (self.has_crash_accounting and job.starts > 0)
        signals.job_started.send(sender=type(self), queue=self, job=job)
        started = time.monotonic()
        if claim_committed:
            # The claim is committed: the task gets a transaction of its own.
            try:
                with transaction.atomic(using=self.using):
                    retval = self.run_job(job)
            except Exception as exc:  # the task's own code: its failure is the job's
                self._put_back(job, exc, give_up=self.at_most_once)
                return job, None, exc
            if clear_start:
                sql.execute(self.using, sql.CLEAR_JOB_STARTS, {"ids": [job.id]})
            return self._succeeded(job, retval, time.monotonic() - started)
        job_transaction = transactions.open_on(connection)
        savepoint = None
        if job_transaction is not None:
            # In the worker's JobTransaction the savepoint waits for the task's first statement.
            savepoint = job_transaction.savepoint_for_task(sql.OPEN_JOB_SAVEPOINT)
        else:
            sql.execute(self.using, sql.OPEN_JOB_SAVEPOINT)
        retval, exc = self._run_in_savepoint(job, connection, savepoint)
        if exc is not None:
            self._put_back(job, exc, give_up=False)
            return job, None, exc
        # Keep the task's writes (and forget the start) in one round trip; in the worker's
        # JobTransaction, the same round trip as the commit (and the next job's claim).
        opened = savepoint is None or savepoint.opened
        params: dict[str, Any] | None = {"ids": [job.id]} if clear_start else None
        if clear_start:
            release = sql.render(
                sql.RELEASE_JOB_SAVEPOINT_AND_CLEAR_START
                if opened
                else sql.CLEAR_JOB_STARTS,
                self.job_table,
            )
        else:
            release = sql.RELEASE_JOB_SAVEPOINT if opened else ""
        if job_transaction is not None:
            if release:
                job_transaction.defer(release, params)
        else:
            sql.execute(self.using, release, params)
        return self._succeeded(job, retval, time.monotonic() - started)

    def _run_in_savepoint(
        self,
        job: BaseJob,
        connection: Any,
        savepoint: transactions.TaskSavepoint | None = None,
    ) -> tuple[Any, Exception | None]:
        """Run the job's task in the savepoint ``dpq_job``; on failure roll back to it.

        The savepoint is open, or, with ``savepoint``, opened by the task's first statement
        if it sends one. A savepoint of our own (not ``transaction.atomic``) lets the release
        share a round trip with the next statement. Django's bookkeeping is kept right by
        hand: callbacks the task registered with ``on_commit`` are dropped with its writes.
        """
        callbacks = len(connection.run_on_commit)
        try:
            try:
                retval = self.run_job(job)
            finally:
                if savepoint is not None:
                    savepoint.stop_waiting()
            if (
                connection.needs_rollback
                or connection.connection.info.transaction_status == TRANSACTION_IN_ERROR
            ):
                raise exceptions.DpqError(
                    "the task caught a database error without rolling back to a savepoint, "
                    "leaving the transaction unusable; wrap the failing statement in "
                    "transaction.atomic() so that only it is rolled back"
                )
        except Exception as exc:  # the task's own code: its failure is the job's
            # Reset first: after an ORM error Django refuses every statement, the rollback
            # to our savepoint included, while needs_rollback is set.
            connection.needs_rollback = False
            if savepoint is None or savepoint.opened:
                sql.execute(self.using, sql.ROLLBACK_JOB_SAVEPOINT)
            elif connection.connection.info.transaction_status == TRANSACTION_IN_ERROR:
                # Only a statement on a cursor TaskSavepoint cannot see gets here: nothing
                # to roll back to, so the whole claim rolls back and the job runs again.
                raise exceptions.DpqError(
                    f"job {job.id}: the task's transaction is in error after a statement "
                    "sent outside the job's savepoint (on a cursor made before the task "
                    "started, or with a cursor_factory of its own); the job's claim is "
                    "rolled back and it runs again. Make the task's cursors with "
                    "connection.cursor() while it runs"
                ) from exc
            del connection.run_on_commit[callbacks:]
            return None, exc
        return retval, None

    def _put_back(
        self,
        job: BaseJob,
        exc: BaseException,
        *,
        give_up: bool,
        error_text: str | None = None,
        in_batch: bool = False,
    ) -> None:
        """Write a failed run back to the table: a later retry, or failed_at.

        A job claimed alone was deleted by its claim and is inserted again with the same id;
        a job of a batch is still in the table, locked, and is updated in place.
        """
        job.attempts += 1
        job.last_error = error_text or "".join(traceback.format_exception(exc))
        policy = self.retry_policies.get(job.task, self.retry_policy)
        decision = decide(policy, job.attempts)
        give_up = give_up or decision.give_up
        params = {
            "id": job.id,
            "created_at": job.created_at,
            "execute_at": job.execute_at,
            "give_up": give_up,
            "retry_in": decision.retry_in,
            "priority": job.priority,
            "task": job.task,
            "args": getattr(job, "claimed_args", None) or json.dumps(job.args),
            "queue": job.queue,
            "attempts": job.attempts,
            "last_error": job.last_error,
        }
        if in_batch:
            sql.execute(
                self.using, sql.RECORD_JOB_FAILURE, params, job_table=self.job_table
            )
        else:
            with transaction.atomic(using=self.using):
                sql.execute(
                    self.using, sql.PUT_BACK_JOB, params, job_table=self.job_table
                )
                if self.has_crash_accounting:
                    sql.execute(self.using, sql.CLEAR_JOB_STARTS, {"ids": [job.id]})
        extra = {**self._log_extra(job), "attempts": job.attempts}
        if give_up:
            job.failed_at = timezone.now()
            self.logger.error(
                "Job %s (%s) failed after %s attempt(s) and is kept as failed: %s",
                job.id,
                job.task,
                job.attempts,
                _one_line(exc),
                exc_info=exc if error_text is None else None,
                extra=extra,
            )
        else:
            job.execute_at = timezone.now() + datetime.timedelta(
                seconds=decision.retry_in
            )
            self.logger.warning(
                "Job %s (%s) failed (attempt %s of %s); retrying in %.1fs: %s",
                job.id,
                job.task,
                job.attempts,
                policy.max_attempts,
                decision.retry_in,
                _one_line(exc),
                exc_info=exc,
                extra=extra,
            )
        signals.job_failed.send(
            sender=type(self), queue=self, job=job, exc=exc, will_retry=not give_up
        )

    def lock_batch(self, limit: int) -> list[BaseJob]:
        """Lock up to ``limit`` ready jobs for ``process_batch`` (not deleted: see there)."""
        rows = sql.fetch_all(
            self.using,
            sql.LOCK_JOBS,
            {"queue": self.name, "limit": limit},
            job_table=self.job_table,
        )
        return self._claimed(rows)

    def claim_by_id(self, ids: list[int]) -> list[BaseJob]:
        """Claim the given jobs if they are still ready and nobody holds them."""
        rows = sql.fetch_all(
            self.using, sql.CLAIM_JOBS_BY_ID, {"ids": ids}, job_table=self.job_table
        )
        return self._claimed(rows)

    def prepare_claim(self) -> None:
        """Prepare the one-job claim on this thread's connection; claim() then executes it.

        For worker threads, which claim thousands of times on one connection: planning the
        claim is most of its cost to PostgreSQL. A session-level prepared statement does not
        survive a pooler that hands each transaction another server connection (PgBouncer in
        transaction mode); when it goes missing, the queue stops preparing its claim.
        """
        if not self._prepare_claims:
            return
        connection = connections[self.using]
        connection.ensure_connection()
        prepared = getattr(connection, _PREPARED_CLAIM, None)
        if prepared is not None and prepared[0] is connection.connection:
            return
        prepare, execute = sql.prepared_claim(self.job_table)
        try:
            with connection.cursor() as cursor:
                cursor.execute(prepare)
        except DatabaseError as exc:
            # Already there on a fresh connection: a pooler shares server sessions.
            if getattr(exc.__cause__, "pgcode", None) != DUPLICATE_PREPARED_STATEMENT:
                raise
            self._lost_prepared_claim(connection)
            return
        setattr(connection, _PREPARED_CLAIM, (connection.connection, execute))

    def _lost_prepared_claim(self, connection: Any) -> None:
        setattr(connection, _PREPARED_CLAIM, None)
        if self._prepare_claims:
            self._prepare_claims = False
            self.logger.warning(
                "The prepared claim of queue %r went missing from its connection, or was "
                "there before it was prepared (a connection pooler in transaction mode?): "
                "this process claims without preparing from now on",
                self.name,
            )

    def _claimed(self, rows: list[tuple]) -> list[BaseJob]:
        """Build the claimed jobs, and count the deaths the claim found before any runs.

        A job whose earlier claim rolled back with its worker gets one more start, written
        now: this claim's lock replaces the evidence, and this run may die too. A job that
        another transaction held is given its start counts as they are now (that holder
        may have written them after the claim's snapshot).
        """
        jobs = [self.job_model.from_claim_row(row) for row in rows]
        held = [job for job in jobs if job.held_by]
        if not held or not self.has_crash_accounting:
            return jobs
        found = {
            job_id: (dead, starts, solo_starts)
            for job_id, dead, starts, solo_starts in sql.fetch_all(
                self.using,
                sql.FIND_DEAD_CLAIMS,
                {
                    "ids": [job.id for job in held],
                    "held_by": [job.held_by for job in held],
                },
            )
        }
        dead = {}
        for job in held:
            dead[job.id], job.starts, job.solo_starts = found[job.id]
        deaths = [job for job in held if dead[job.id] is not None]
        if deaths:
            self.start_recorder.record(
                [StartCount(job.id, 1, 0, dead[job.id]) for job in deaths],
                worker=self.worker_name,
            )
            for job in deaths:
                job.starts += 1
        return jobs

    def give_back(self, job: BaseJob) -> None:
        """Account for a claim of ``job`` that the caller is about to roll back on purpose.

        The rolled-back claim looks like one that died with its worker; its start record now
        names it, so the next claim does not count a death.
        """
        # Only a job with starts is given back (a suspect), so its start record exists.
        if self.has_crash_accounting and job.starts > 0 and job.claim_xid is not None:
            self.start_recorder.record(
                [StartCount(job.id, 0, 0, job.claim_xid)], worker=self.worker_name
            )

    def process_batch(
        self, jobs: list[BaseJob], *, deadline: float, should_stop: Callable[[], bool]
    ) -> list[RunResult]:
        """Run locked jobs one after another in the current transaction (``--batch``).

        Each task runs in its own savepoint: one that raises is rolled back alone and its
        failure recorded in place. Jobs that succeed are deleted at the end, in the same
        transaction, so each job's writes still commit together with its removal. Once
        ``deadline`` (monotonic) passes or ``should_stop()``, the remaining jobs are left
        untouched: the commit releases them for the next claim. A crash rolls back the locks
        of the whole batch, and the next claim of each of its jobs counts a death.
        """
        connection = connections[self.using]
        results: list[RunResult] = []
        runnable: list[BaseJob] = []
        for job in jobs:
            refusal = self._refusal(job)
            if refusal is None:
                runnable.append(job)
            else:
                self._put_back(
                    job, refusal, give_up=True, error_text=str(refusal), in_batch=True
                )
                results.append((job, None, refusal))
        done_ids: list[int] = []
        lazy = not transactions.watched(connection)
        # A savepoint of a job before is still open: the next one opened releases it first.
        savepoint_open = False
        with connection.cursor() as cursor:
            for n, job in enumerate(runnable):
                if n and (time.monotonic() >= deadline or should_stop()):
                    break
                statement = (
                    sql.NEXT_JOB_SAVEPOINT if savepoint_open else sql.OPEN_JOB_SAVEPOINT
                )
                savepoint = None
                signals.job_started.send(sender=type(self), queue=self, job=job)
                if lazy:
                    # Opened by the task's first statement, if it sends one.
                    savepoint = transactions.TaskSavepoint(
                        connection.connection, statement
                    )
                else:
                    cursor.execute(statement)
                started = time.monotonic()
                retval, exc = self._run_in_savepoint(job, connection, savepoint)
                savepoint_open = savepoint_open or savepoint is None or savepoint.opened
                if exc is not None:
                    self._put_back(job, exc, give_up=False, in_batch=True)
                    results.append((job, None, exc))
                    continue
                done_ids.append(job.id)
                results.append(self._succeeded(job, retval, time.monotonic() - started))
            cursor.execute(
                sql.render(sql.FINISH_BATCH, self.job_table),
                {
                    "done_ids": done_ids,
                    # Only jobs with a start record have one to forget (the refused ones
                    # too: their failure is final, as a lone claim's refusal in _put_back).
                    "started_ids": [job.id for job in jobs if job.starts > 0]
                    if self.has_crash_accounting
                    else [],
                },
            )
        return results

    def _refusal(self, job: BaseJob) -> exceptions.DpqError | None:
        """Why a claimed job must not run at all (crashed too often, unknown task), or None."""
        if self.has_crash_accounting and job.solo_starts >= self.crash_limit:
            return exceptions.CrashLimitExceeded(
                f"the worker died {job.solo_starts} times while running this job alone "
                f"(crash_limit={self.crash_limit}; {job.starts} starts in all); it is not run "
                f"again until a person requeues it"
            )
        if job.task not in self.tasks:
            known = ", ".join(sorted(self.tasks)) or "none"
            return exceptions.TaskNotRegisteredError(
                f"task {job.task!r} is not registered in queue {self.name!r} (known: {known}); "
                f"deploy code that has it, then requeue the job"
            )
        return None

    def _succeeded(self, job: BaseJob, retval: Any, elapsed: float) -> RunResult:
        # Checked first: building the record's extra costs more than a short job's bookkeeping.
        if self.logger.isEnabledFor(logging.INFO):
            self.logger.info(
                "Job %s (%s) succeeded in %.3fs",
                job.id,
                job.task,
                elapsed,
                extra={**self._log_extra(job), "duration": elapsed},
            )
        signals.job_succeeded.send(
            sender=type(self), queue=self, job=job, retval=retval, duration=elapsed
        )
        return job, retval, None

    def _log_extra(self, job: BaseJob) -> dict[str, Any]:
        return {"job_id": job.id, "task": job.task, "queue": self.name}

    # --- Crash accounting -----------------------------------------------------------------

    @property
    def start_recorder(self) -> StartRecorder:
        with self._recorder_lock:
            if self._start_recorder is None:
                name = f"dpq:{self.name}:{HOSTNAME}:{os.getpid()}:starts"
                self._start_recorder = StartRecorder(self.using, name)
            return self._start_recorder

    def close(self) -> None:
        """Close the crash-accounting connection (the worker does this on shutdown)."""
        if self._start_recorder is not None:
            self._start_recorder.close()


class AtLeastOnceQueue(Queue):
    """Run each job inside the transaction that claims it: its writes and its removal commit
    together, and a worker that dies returns the job to the queue."""

    def run_once(self, exclude_ids: Iterable[int] = ()) -> RunResult | None:
        with transaction.atomic(using=self.using):
            jobs = self.claim(exclude_ids=exclude_ids)
            if not jobs:
                return None
            return self.process_job(jobs[0])


class AtMostOnceQueue(Queue):
    """Commit the claim before running the job: a worker that dies loses the job, and a task
    that raises leaves the job failed, never retried by itself."""

    at_most_once = True

    def run_once(self, exclude_ids: Iterable[int] = ()) -> RunResult | None:
        if connections[self.using].in_atomic_block:
            raise exceptions.DpqError(
                "AtMostOnceQueue.run_once() was called inside a transaction; the claim must "
                "commit before the task runs, so call it outside transaction.atomic()"
            )
        jobs = self.claim(exclude_ids=exclude_ids)
        if not jobs:
            return None
        return self.process_job(jobs[0])


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0] if text else type(exc).__name__
