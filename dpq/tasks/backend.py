"""``dpq.tasks.DpqBackend``: dpq as a backend of Django's Tasks framework.

    TASKS = {"default": {"BACKEND": "dpq.tasks.DpqBackend", "QUEUES": ["default", "emails"]}}

Each queue of the backend is a dpq queue (``OPTIONS["queue_prefix"]`` + its name) run by
``manage.py dpq_worker --backend default --queue-name emails``. Building the backend touches
no database: Django's system checks build every TASKS backend on every management command,
``migrate`` on a fresh database included.
"""

from __future__ import annotations

import datetime
import threading
from typing import Any

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from dpq import exceptions, sql
from dpq.retry import RetryPolicy
from dpq.tasks import compat, results
from dpq.tasks.queue import TaskQueue

# What OPTIONS may hold, and the defaults.
DEFAULTS: dict[str, Any] = {
    "database": DEFAULT_DB_ALIAS,
    "queue_prefix": "tasks.",
    "notify": True,
    "max_attempts": 3,
    "backoff": None,
    "retry_policies": {},
    "crash_limit": 3,
    "result_retention": datetime.timedelta(days=7),
    "prune_interval": 300,
}
PRUNE_BATCH = 1000
# Tasks whose validation enqueue() remembers (each a module-level task, or a .using() of one).
MAX_VALIDATED = 1000


class DpqBackend(compat.BaseTaskBackend):
    """Tasks as dpq jobs: enqueued in the caller's transaction, run by dpq's worker."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict) -> None:
        super().__init__(alias, params)
        options = dict(self.options or {})
        unknown = sorted(set(options) - set(DEFAULTS))
        if unknown:
            raise compat.InvalidTaskBackend(
                f"TASKS[{alias!r}]['OPTIONS'] has unknown keys {unknown}; dpq's are "
                f"{sorted(DEFAULTS)}"
            )
        options = {**DEFAULTS, **options}
        self.using = options["database"]
        self.queue_prefix = options["queue_prefix"]
        if not isinstance(self.queue_prefix, str):
            raise compat.InvalidTaskBackend(
                f"TASKS[{alias!r}]['OPTIONS']['queue_prefix'] must be a string, "
                f"got {self.queue_prefix!r}"
            )
        self.notify = bool(options["notify"])
        self.result_retention = _retention(alias, options["result_retention"])
        self.prune_interval = _interval(alias, options["prune_interval"])
        backoff = options["backoff"]
        if backoff is not None and not callable(backoff):
            raise compat.InvalidTaskBackend(
                f"TASKS[{alias!r}]['OPTIONS']['backoff'] must be a dpq.retry backoff "
                f"(ExponentialBackoff(), FixedBackoff(60)), got {backoff!r}"
            )
        policies = options["retry_policies"]
        if not isinstance(policies, dict) or not all(
            isinstance(p, RetryPolicy) for p in policies.values()
        ):
            raise compat.InvalidTaskBackend(
                f"TASKS[{alias!r}]['OPTIONS']['retry_policies'] must map task import paths "
                f"to dpq.retry.RetryPolicy objects, got {policies!r}"
            )
        self._queue_options = {
            "max_attempts": options["max_attempts"],
            "backoff": backoff,
            "retry_policies": policies,
            "crash_limit": options["crash_limit"],
            "using": self.using,
        }
        self._queues: dict[str, TaskQueue] = {}
        self._lock = threading.Lock()
        self._task_paths: set[str] = set()
        self._validated: set[compat.Task] = set()
        # The declared queues are built now (no database), so that bad OPTIONS or queue
        # names stop the code that loads the settings.
        for queue_name in sorted(self.queues):
            try:
                self.queue(queue_name)
            except exceptions.DpqError as exc:
                raise compat.InvalidTaskBackend(f"TASKS[{alias!r}]: {exc}") from exc

    def dpq_queue_name(self, queue_name: str) -> str:
        return f"{self.queue_prefix}{queue_name}"

    def queue(self, queue_name: str = compat.DEFAULT_TASK_QUEUE_NAME) -> TaskQueue:
        """The dpq queue that runs this backend's queue ``queue_name`` (built once)."""
        found = self._queues.get(queue_name)
        if found is not None:
            return found
        with self._lock:
            if queue_name not in self._queues:
                name = self.dpq_queue_name(queue_name)
                self._queues[queue_name] = TaskQueue(
                    self,
                    queue_name,
                    name=name,
                    notify_channel=name if self.notify else None,
                    **self._queue_options,
                )
            return self._queues[queue_name]

    def validate_task(self, task: compat.Task) -> None:
        super().validate_task(task)
        try:
            self.queue(task.queue_name)
        except exceptions.DpqError as exc:
            raise compat.InvalidTask(
                f"queue {task.queue_name!r} cannot be a dpq queue: {exc}"
            ) from exc

    def enqueue(self, task: compat.Task, args: Any, kwargs: Any) -> compat.TaskResult:
        """Insert the task's job in the caller's transaction; return its READY result."""
        # Validation inspects the function's signature: done once per task (a run_after
        # makes each call's task a new one, checked each time).
        if task not in self._validated:
            self.validate_task(task)
            if task.run_after is None and len(self._validated) < MAX_VALIDATED:
                self._validated.add(task)
        path = task.module_path
        if path not in self._task_paths:
            try:
                results.resolve_task(path)
            except LookupError as exc:
                raise compat.InvalidTask(
                    f"{exc}: a worker finds a task by its function's import path, so the "
                    f"@task must be bound to the function's own name at module level"
                ) from exc
            self._task_paths.add(path)
        call: dict[str, Any] = {
            "args": args,
            "kwargs": kwargs,
            "backend": self.alias,
            "queue_name": task.queue_name,
        }
        if task.run_after is not None:
            call["run_after"] = task.run_after.isoformat()
        encoded = results.encode(call, f"the arguments of {path}")
        queue = self.queue(task.queue_name)
        params = {
            "task": path,
            "args": encoded,
            "execute_at": task.run_after,
            "priority": task.priority,
            "queue": queue.name,
        }
        statement = sql.INSERT_JOB
        if queue.notify_channel:
            statement = sql.INSERT_JOB_AND_NOTIFY
            params["channel"] = queue.notify_channel
        row = sql.fetch_one(self.using, statement, params)
        result = results.make_result(
            task,
            row[0],
            compat.TaskResultStatus.READY,
            args=compat.normalize_json(args),
            kwargs=compat.normalize_json(kwargs),
            backend=self.alias,
            enqueued_at=row[1],
        )
        compat.task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> compat.TaskResult:
        return results.read_result(self, result_id)

    def prune_results(self, *, older_than: datetime.timedelta | None = None) -> int:
        """Delete the results that finished longer ago than the retention; return how many.

        Results of jobs still in the job table (failed, kept for a person) are kept.
        """
        cutoff = self.prune_cutoff(older_than)
        if cutoff is None:
            return 0
        deleted = 0
        while True:
            count = self.prune_batch(cutoff, PRUNE_BATCH)
            deleted += count
            if count < PRUNE_BATCH:
                return deleted

    def prune_cutoff(
        self, older_than: datetime.timedelta | None = None
    ) -> datetime.datetime | None:
        """Results finished before this moment are expired; None: results are kept forever."""
        keep = self.result_retention if older_than is None else older_than
        return None if keep is None else timezone.now() - keep

    def prune_batch(self, cutoff: datetime.datetime, limit: int) -> int:
        """Delete up to ``limit`` results finished before ``cutoff`` (one statement)."""
        return sql.execute(
            self.using,
            sql.PRUNE_TASK_RESULTS,
            {"backend": self.alias, "cutoff": cutoff, "limit": limit},
        )


def _retention(alias: str, value: Any) -> datetime.timedelta | None:
    if value is None or isinstance(value, datetime.timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return datetime.timedelta(seconds=value)
    raise compat.InvalidTaskBackend(
        f"TASKS[{alias!r}]['OPTIONS']['result_retention'] must be a timedelta, seconds "
        f"(a number >= 0) or None (keep results forever), got {value!r}"
    )


def _interval(alias: str, value: Any) -> float | None:
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if value is None or (
        isinstance(value, int | float) and not isinstance(value, bool) and value > 0
    ):
        return None if value is None else float(value)
    raise compat.InvalidTaskBackend(
        f"TASKS[{alias!r}]['OPTIONS']['prune_interval'] must be seconds (a number > 0) or "
        f"a timedelta between two prunes of expired results by each worker, or None (workers "
        f"never prune; run dpq_prune_task_results instead), got {value!r}"
    )
