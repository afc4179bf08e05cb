"""Queues: the producer API (enqueue, LISTEN/NOTIFY) and running a claimed job.

The claim side, shared by every queue, is dpq.jobs.JobStore."""

from __future__ import annotations

import datetime
import logging
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from dpq import (
    driver,
    events,
    exceptions,
    outcomes,
    pauses,
    runner,
    signals,
    sql,
    validation,
)
from dpq.jobs import HOSTNAME, JobStore
from dpq.models import BaseJob, Job, JSONValue
from dpq.retry import RetryPolicy
from dpq.schedules import compile_schedules

if TYPE_CHECKING:
    from dpq.retry import Backoff

logger = logging.getLogger(__name__)

Task = Callable[["Queue", BaseJob], Any]
RunResult = tuple[BaseJob, Any, BaseException | None]


class Queue(JobStore):
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
        schedules: Mapping[str, object] | None = None,
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
        if (
            not isinstance(name, str)
            or not name
            or len(name) > validation.MAX_QUEUE_NAME_LENGTH
        ):
            raise exceptions.QueueConfigurationError(
                f"queue name must be a non-empty string of at most {validation.MAX_QUEUE_NAME_LENGTH} "
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
        self.notify_channel = validation.validate_channel(notify_channel)
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
        self.schedules = self._compiled_schedules(schedules)
        self._start_recorder = None
        self._prepare_claims = True
        self._recorder_lock = threading.Lock()

    def _compiled_schedules(self, schedules: Mapping[str, object] | None) -> dict:
        """Check ``schedules={...}`` now, so that a bad one stops the code that builds the queue."""
        try:
            compiled = compile_schedules(self.name, self.tasks, schedules)
            for name, schedule in compiled.items():
                try:
                    validation.job_params(
                        self.name,
                        self.tasks,
                        name,
                        schedule.args,
                        priority=schedule.priority,
                    )
                except exceptions.DpqError as exc:
                    raise ValueError(
                        f"schedule {name!r} of queue {self.name!r}: {exc}"
                    ) from exc
        except ValueError as exc:
            raise exceptions.QueueConfigurationError(str(exc)) from exc
        return compiled

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
        params = validation.job_params(
            self.name,
            self.tasks,
            task,
            {} if args is None else args,
            execute_at,
            priority,
        )
        statement = sql.INSERT_JOB
        if self.notify_channel and self.notify_on_enqueue:
            statement = sql.INSERT_JOB_AND_NOTIFY
            params["channel"] = self.notify_channel
        row = sql.fetch_one(self.using, statement, params, job_table=self.job_table)
        job = self.job_model.from_claim_row(row)
        events.send(self, signals.job_enqueued, job=job)
        return job

    def enqueue_many(self, items: Iterable[tuple | Mapping[str, Any]]) -> list[int]:
        """Add many jobs with one INSERT and at most one NOTIFY; return their ids in order.

        Each item is ``(task, args)`` or a dict with ``task`` and optionally ``args``,
        ``execute_at`` and ``priority``. Every item is checked before anything is written:
        one bad item raises and no job is added.
        """
        rows = [
            validation.job_params(
                self.name, self.tasks, **validation.item_fields(n, item)
            )
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

    # --- LISTEN / NOTIFY ------------------------------------------------------------------

    def pause(self, *, by: str = "") -> bool:
        """Pause this queue: its workers stop claiming, running jobs finish (dpq.pauses)."""
        return pauses.pause_queue(self.name, by=by, using=self.using)

    def resume(self) -> bool:
        """Resume this queue after pause(); False when it was not paused."""
        return pauses.resume_queue(self.name, using=self.using)

    def listen(self) -> None:
        """LISTEN on the queue's channel with this thread's connection."""
        channel = self._require_channel("listen")
        connection = connections[self.using]
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute(sql.listen_statement(channel, connection.connection))

    def wait(self, timeout: float = 30) -> list:
        """Wait up to ``timeout`` seconds for notifications; return those of this channel."""
        connection = connections[self.using]
        connection.ensure_connection()
        notifies = self.filter_notifies()
        if notifies:
            return notifies
        driver.wait_for_notifies(connection.connection, timeout)
        return self.filter_notifies()

    def filter_notifies(self) -> list:
        """Take this channel's notifications from those the connection received; keep the rest."""
        received = driver.received_notifies(connections[self.using].connection)
        mine = [n for n in received if n.channel == self.notify_channel]
        received[:] = [n for n in received if n.channel != self.notify_channel]
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

    # --- Run -------------------------------------------------------------------------------

    def run_once(self, exclude_ids: Iterable[int] = ()) -> RunResult | None:
        """Claim one job and run it; return None, or ``(job, retval, exc)``."""
        raise NotImplementedError

    def run_job(self, job: BaseJob) -> Any:
        """Call the job's task and return what it returns (raises what it raises)."""
        return self.tasks[job.task](self, job)

    def process_job(self, job: BaseJob, *, solo: bool = True) -> RunResult:
        """Run a claimed job in the current transaction and record its outcome.

        At-least-once, the task runs in a savepoint of the claim's transaction: if it
        raises, its writes are rolled back and the job is put back with one more attempt.
        ``solo`` says that no other job runs in this process meanwhile: only solo starts
        count towards crash_limit. Logs and signals are sent at once, not after the commit.
        """
        if self.at_most_once:
            return runner.run_committed_claim(self, job).result
        counted = self.has_crash_accounting
        run = runner.run_job(self, job, solo=solo, counted=counted)
        outcomes.finish_claim(self, [run], [], counted=counted)
        events.announce(self, run)
        return run.result

    def refusal(self, job: BaseJob) -> exceptions.DpqError | None:
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

    def gives_up_on(self, exc: BaseException | None) -> bool:
        """Whether a run that raised ``exc`` is final, whatever attempts remain (no: retry)."""
        return False

    def failure_recorded(self, run: outcomes.Run) -> None:
        """Called in the transaction that records a failed run, after the job's row."""

    def retry_policy_for(self, task: str) -> RetryPolicy:
        """The retry policy of ``task``: its own from retry_policies, else the queue's."""
        return self.retry_policies.get(task, self.retry_policy)

    def background_thread(self, stopping: threading.Event) -> threading.Thread | None:
        """Upkeep a long-running worker of this queue does beside its jobs, or None.

        The worker starts the thread after its worker threads (not with --burst) and joins
        it on exit; the thread ends soon after ``stopping`` is set. Never part of a claim.
        """
        return None


class AtLeastOnceQueue(Queue):
    """Run each job inside the transaction that claims it: its writes and its removal commit
    together, and a worker that dies returns the job to the queue."""

    def run_once(self, exclude_ids: Iterable[int] = ()) -> RunResult | None:
        outcome = runner.run_claim(
            self, lambda: self.claim(exclude_ids=exclude_ids), solo=True
        )
        if not outcome.runs:
            return None
        run = outcome.runs[0]
        if outcome.callback_error is not None and run.exc is None:
            return run.job, None, outcome.callback_error
        return run.result


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
        return runner.run_committed_claim(self, jobs[0]).result
