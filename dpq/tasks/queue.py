"""The dpq queue behind one queue of a DpqBackend: jobs whose tasks are Django ``@task``s.

A job's ``task`` is the task's import path and its args the call (dpq.tasks.results). It is
claimed and run as every at-least-once job is (dpq.runner): the task in a savepoint of the
claim's transaction, and here, inside that savepoint once the task has returned, the one
statement that records its success with its return value. A failure is recorded after the
savepoint rolled back, in the same transaction as the job's put-back.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from dpq import exceptions, signals, sql
from dpq.jobs import HOSTNAME
from dpq.queue import AtLeastOnceQueue
from dpq.tasks import compat, results

if TYPE_CHECKING:
    from dpq.models import BaseJob
    from dpq.outcomes import Run

logger = logging.getLogger(__name__)
SHORT_HOST = HOSTNAME.split(".")[0]


class ReturnValueError(exceptions.DpqError, TypeError):
    """A task returned a value that does not survive a JSON round trip (never retried)."""


class TaskAttempt:
    """One run of a task, kept on its job while it runs: what its result is made of."""

    __slots__ = ("errors", "first_started_at", "started_at", "task", "worker_ids")

    def __init__(self, task: compat.Task, prior: tuple | None) -> None:
        self.task = task
        self.started_at = timezone.now()
        me = worker_id()
        if prior is None:
            self.errors, self.worker_ids, self.first_started_at = [], [me], None
        else:
            self.errors = json.loads(prior[0])
            self.worker_ids = [*json.loads(prior[1]), me]
            self.first_started_at = prior[2]


_worker_ids = threading.local()


def worker_id() -> str:
    """``host:pid:thread`` of the running worker thread, as its connection names it."""
    pid = os.getpid()
    known = getattr(_worker_ids, "known", None)
    # Worked out once per thread: a thread's name and role do not change while it runs
    # tasks, but a forked child's threads must not answer with the parent's pid.
    if known is None or known[0] != pid:
        thread = threading.current_thread()
        role = getattr(thread, "role", None) or thread.name
        known = _worker_ids.known = (pid, f"{SHORT_HOST}:{pid}:{role}"[:64])
    return known[1]


class TaskQueue(AtLeastOnceQueue):
    """Runs the jobs of one queue of a DpqBackend (``backend.queue(name)``)."""

    def __init__(self, backend: Any, queue_name: str, **options: Any) -> None:
        super().__init__(tasks={}, **options)
        # The @task found at each import path: a worker imports each task once.
        self._resolved: dict[str, compat.Task] = {}
        self.backend = backend
        self.backend_alias = backend.alias
        # Task signals are sent by the backend's class, as Django's backends send them.
        self.backend_class = type(backend)
        self.queue_name = queue_name

    def __repr__(self) -> str:
        return f"<TaskQueue {self.name!r} of tasks backend {self.backend_alias!r}>"

    def background_thread(self, stopping: threading.Event) -> threading.Thread | None:
        """The prune of the backend's expired results (OPTION prune_interval), if on."""
        if self.backend.prune_interval is None or self.backend.result_retention is None:
            return None
        from dpq.tasks.pruner import ResultPruner

        return ResultPruner(
            self.backend, self.name, stopping, self.backend.prune_interval
        )

    # --- What the runner asks ------------------------------------------------------------

    def refusal(self, job: BaseJob) -> exceptions.DpqError | None:
        if self.has_crash_accounting and job.solo_starts >= self.crash_limit:
            return super().refusal(job)
        try:
            self._resolve(job.task)
        except LookupError as exc:
            return exceptions.TaskNotRegisteredError(
                f"{exc}; deploy code that has it, then requeue the job"
            )
        return None

    def gives_up_on(self, exc: BaseException | None) -> bool:
        return isinstance(exc, ReturnValueError)

    def run_job(self, job: BaseJob) -> compat.TaskResult:
        """Run the job's task; record its success in this (the task's) savepoint."""
        call = job.args
        task = self._task_of(job)
        prior = None
        if job.attempts:
            prior = sql.fetch_one(self.using, sql.TASK_ATTEMPTS, {"id": job.id})
        attempt = job.task_attempt = TaskAttempt(task, prior)
        running = self._result(job, attempt, compat.TaskResultStatus.RUNNING)
        send_robust(compat.task_started, self.backend_class, running)
        if task.takes_context:
            value = task.call(
                compat.TaskContext(task_result=running),
                *call["args"],
                **call["kwargs"],
            )
        else:
            value = task.call(*call["args"], **call["kwargs"])
        try:
            encoded = results.encode(value, f"the return value of {job.task}")
        except (TypeError, ValueError) as exc:
            raise ReturnValueError(str(exc)) from exc
        finished = timezone.now()
        self._record(job, attempt, "SUCCESSFUL", encoded, "[]", finished)
        done = self._result(
            job,
            attempt,
            compat.TaskResultStatus.SUCCESSFUL,
            finished_at=finished,
            return_value=None if value is None else json.loads(encoded),
        )
        return done

    def failure_recorded(self, run: Run) -> None:
        job = run.job
        attempt = getattr(job, "task_attempt", None)
        if (
            attempt is None
        ):  # refused before it ran: crash limit, a task that cannot load
            try:
                task = self._task_of(job)
            except (LookupError, compat.InvalidTask):
                task = None
            attempt = job.task_attempt = TaskAttempt(task, None) if task else None
        error = results.error_entry(run.exc, job.last_error)
        status = "FAILED" if run.give_up else "READY"
        finished = timezone.now() if run.give_up else None
        if attempt is None:
            return
        self._record(job, attempt, status, None, json.dumps([error]), finished)
        attempt.errors.append(error)
        if run.give_up:
            job.task_final_result = self._result(
                job, attempt, compat.TaskResultStatus.FAILED, finished_at=finished
            )

    # --- Helpers -------------------------------------------------------------------------

    def _resolve(self, path: str) -> compat.Task:
        task = self._resolved.get(path)
        if task is None:
            task = self._resolved[path] = results.resolve_task(path)
        return task

    def _task_of(self, job: BaseJob) -> compat.Task:
        call = job.args
        return results.as_enqueued(
            self._resolve(job.task),
            backend=self.backend_alias,
            queue_name=self.queue_name,
            priority=job.priority,
            run_after=results._time(call.get("run_after")),
        )

    def _record(
        self,
        job: BaseJob,
        attempt: TaskAttempt,
        status: str,
        return_value: str | None,
        error: str,
        finished: Any,
    ) -> None:
        call = job.args
        sql.execute(
            self.using,
            sql.RECORD_TASK_ATTEMPT,
            {
                "id": job.id,
                "backend": self.backend_alias,
                "queue_name": self.queue_name,
                "task_path": job.task,
                "priority": job.priority,
                "args": json.dumps(call.get("args", [])),
                "kwargs": json.dumps(call.get("kwargs", {})),
                "status": status,
                "return_value": return_value,
                "error": error,
                "worker_ids": json.dumps(attempt.worker_ids[-1:]),
                "enqueued_at": job.created_at,
                "started_at": attempt.started_at,
                "finished_at": finished,
            },
        )

    def _result(
        self,
        job: BaseJob,
        attempt: TaskAttempt,
        status: str,
        *,
        finished_at: Any = None,
        return_value: Any = None,
    ) -> compat.TaskResult:
        return results.make_result(
            attempt.task,
            job.id,
            status,
            args=job.args.get("args", []),
            kwargs=job.args.get("kwargs", {}),
            backend=self.backend_alias,
            enqueued_at=job.created_at,
            started_at=attempt.first_started_at or attempt.started_at,
            last_attempted_at=attempt.started_at,
            finished_at=finished_at,
            errors=attempt.errors,
            worker_ids=attempt.worker_ids,
            return_value=return_value,
        )


def send_robust(signal: Any, sender: type, task_result: compat.TaskResult) -> None:
    """Send a task signal as Django's backends do; a receiver that raises is logged only."""
    for receiver, response in signal.send_robust(
        sender=sender, task_result=task_result
    ):
        if isinstance(response, Exception):
            logger.error(
                "A receiver of %s raised (%r); the task's outcome stands: %s",
                "a task signal",
                receiver,
                response,
                exc_info=response,
                extra={"task_result_id": task_result.id},
            )


def _announce_success(sender: Any, queue: Any, job: Any, retval: Any, **kwargs: Any):
    if isinstance(retval, compat.TaskResult):
        send_robust(compat.task_finished, queue.backend_class, retval)


def _announce_failure(sender: Any, queue: Any, job: Any, will_retry: bool, **kwargs):
    final = getattr(job, "task_final_result", None)
    if not will_retry and final is not None:
        send_robust(compat.task_finished, queue.backend_class, final)


# Sent after the job's transaction committed (dpq.events.announce), for these queues only.
signals.job_succeeded.connect(
    _announce_success, sender=TaskQueue, dispatch_uid="dpq.tasks.succeeded"
)
signals.job_failed.connect(
    _announce_failure, sender=TaskQueue, dispatch_uid="dpq.tasks.failed"
)
