"""Task results: the JSON they are stored as, and what get_result() reads back.

A job of a DpqBackend carries its call in its args, ``{"args": [...], "kwargs": {...},
"backend": alias, "queue_name": name}`` (and ``"run_after"`` when deferred); its result row
in ``dpq_taskresult`` (dpq.models.TaskResult) holds the attempts so far, then the outcome.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.module_loading import import_string

from dpq import sql
from dpq.tasks import compat

if TYPE_CHECKING:
    from dpq.tasks.backend import DpqBackend

# The largest job id: an id past it names no job.
MAX_ID = 2**63 - 1


def encode(value: Any, what: str) -> str:
    """``value`` as JSON text, if it comes back from JSON as it went in; else TypeError/ValueError.

    Django's rule for args, kwargs and return values: they survive a JSON round trip (after
    the normalisation Django applies itself: tuples become lists, bytes text).
    """
    if value is None:  # most tasks return nothing
        return "null"
    try:
        normalized = compat.normalize_json(value)
    except TypeError as exc:
        raise TypeError(
            f"{what} must survive a JSON round trip: {exc}; pass only dicts, lists, "
            f"strings, numbers, booleans and None (a date as .isoformat(), say)"
        ) from exc
    except ValueError as exc:
        raise ValueError(f"{what} must survive a JSON round trip: {exc}") from exc
    try:
        text = json.dumps(normalized, allow_nan=False)
    except ValueError as exc:
        raise ValueError(
            f"{what} must survive a JSON round trip: {exc} (NaN and infinity have no JSON form)"
        ) from exc
    if json.loads(text) != normalized:
        raise TypeError(
            f"{what} must survive a JSON round trip, and {normalized!r} comes back as "
            f"{json.loads(text)!r}: use string keys in dicts"
        )
    if "\\u0000" in text:
        raise ValueError(
            f"{what} contains a NUL character (\\x00), which PostgreSQL's jsonb cannot "
            f"store; remove it or encode the value (e.g. base64)"
        )
    return text


def error_entry(exc: BaseException | None, text: str) -> dict[str, str]:
    path = compat.exception_path(exc) if exc is not None else "builtins.Exception"
    return {"exception_class_path": path, "traceback": text}


def task_errors(entries: list[dict[str, str]]) -> list[compat.TaskError]:
    return [
        compat.TaskError(
            exception_class_path=entry.get("exception_class_path", ""),
            traceback=entry.get("traceback", ""),
        )
        for entry in entries
    ]


def resolve_task(path: str) -> compat.Task:
    """The Task object at ``path`` (a module-level ``@task``), or LookupError saying why not."""
    try:
        found = import_string(path)
    except ImportError as exc:
        raise LookupError(f"cannot import the task {path!r}: {exc}") from exc
    if not isinstance(found, compat.Task):
        raise LookupError(
            f"{path!r} is a {type(found).__name__}, not a task: decorate the function "
            f"with @task"
        )
    return found


def as_enqueued(
    task: compat.Task,
    *,
    backend: str,
    queue_name: str,
    priority: int,
    run_after: datetime.datetime | None,
) -> compat.Task:
    """The task as it was enqueued: with its queue, priority and run_after of that call."""
    changes = {}
    if task.backend != backend:
        changes["backend"] = backend
    if task.queue_name != queue_name:
        changes["queue_name"] = queue_name
    if task.priority != priority:
        changes["priority"] = priority
    if run_after is not None and task.run_after != run_after:
        changes["run_after"] = run_after
    return task.using(**changes) if changes else task


class StoredValue:
    """A result's return value, once known (a SUCCESSFUL result's never changes again)."""

    __slots__ = ("known", "value")

    def __init__(self, value: Any = None, *, known: bool = False) -> None:
        self.known = known
        self.value = value

    def __repr__(self) -> str:
        return f"StoredValue({self.value!r})" if self.known else "StoredValue(unknown)"

    def take_from(self, fresh: compat.TaskResult) -> None:
        if fresh.status == compat.TaskResultStatus.SUCCESSFUL:
            self.value, self.known = fresh.return_value, True


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DpqTaskResult(compat.TaskResult):
    """The TaskResult of a DpqBackend, with its return value in a field of its own.

    Django's TaskResult keeps the return value in a field that no argument sets; this one
    takes it as ``stored_value`` and answers ``return_value`` from it. refresh() and
    arefresh() let Django reload its own fields, then read the value the first time they
    find the task SUCCESSFUL. (The class is built by dataclass(slots=True): no bare super().)
    """

    stored_value: StoredValue = dataclasses.field(
        default_factory=StoredValue, compare=False
    )

    @property
    def return_value(self) -> Any:
        if self.status == compat.TaskResultStatus.SUCCESSFUL:
            return self.stored_value.value
        return compat.TaskResult.return_value.fget(self)  # raises, saying why

    def refresh(self) -> None:
        compat.TaskResult.refresh(self)
        if self._lacks_value():
            self.stored_value.take_from(self.task.get_backend().get_result(self.id))

    async def arefresh(self) -> None:
        await compat.TaskResult.arefresh(self)
        if self._lacks_value():
            fresh = await self.task.get_backend().aget_result(self.id)
            self.stored_value.take_from(fresh)

    def _lacks_value(self) -> bool:
        return (
            self.status == compat.TaskResultStatus.SUCCESSFUL
            and not self.stored_value.known
        )


def make_result(
    task: compat.Task,
    job_id: int,
    status: str,
    *,
    args: list,
    kwargs: dict,
    backend: str,
    enqueued_at: datetime.datetime | None = None,
    started_at: datetime.datetime | None = None,
    last_attempted_at: datetime.datetime | None = None,
    finished_at: datetime.datetime | None = None,
    errors: list[dict[str, str]] = (),
    worker_ids: list[str] = (),
    return_value: Any = None,
) -> DpqTaskResult:
    successful = status == compat.TaskResultStatus.SUCCESSFUL
    return DpqTaskResult(
        task=task,
        id=str(job_id),
        status=compat.TaskResultStatus(status),
        enqueued_at=enqueued_at,
        started_at=started_at,
        finished_at=finished_at,
        last_attempted_at=last_attempted_at,
        args=args,
        kwargs=kwargs,
        backend=backend,
        errors=task_errors(list(errors)),
        worker_ids=list(worker_ids),
        stored_value=StoredValue(
            return_value if successful else None, known=successful
        ),
    )


def parse_id(result_id: object) -> int | None:
    """The job id that a result id names, or None when it cannot name one."""
    if isinstance(result_id, int) and not isinstance(result_id, bool):
        number = result_id
    elif isinstance(result_id, str) and result_id.isascii() and result_id.isdigit():
        number = int(result_id)
    else:
        return None
    return number if 0 < number <= MAX_ID else None


def _time(value: Any) -> datetime.datetime | None:
    """A datetime from its JSON text (run_after), in the form USE_TZ asks for."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime.datetime) else parse_datetime(value)
    if parsed is not None and timezone.is_aware(parsed) and not settings.USE_TZ:
        return timezone.make_naive(parsed)
    return parsed


def worker_id_of(application_name: str | None) -> str:
    """The worker id in a worker connection's name ``dpq:<queue>:<host>:<pid>:<thread>``."""
    parts = (application_name or "").split(":")
    return ":".join(parts[2:]) if len(parts) >= 5 and parts[0] == "dpq" else "unknown"


def read_result(backend: DpqBackend, result_id: object) -> DpqTaskResult:
    """The result ``result_id`` names, as it stands now; TaskResultDoesNotExist if none."""
    job_id = parse_id(result_id)
    if job_id is None:
        raise compat.TaskResultDoesNotExist(
            f"no task result {result_id!r}: result ids of dpq are job ids (digits)"
        )
    row = sql.fetch_one(backend.using, sql.TASK_RESULT, {"id": job_id})
    (has_job, job_task, job_args, _job_queue, job_priority, created_at, _execute_at) = (
        row[:7]
    )
    (_attempts, last_error, failed_at, running, holder, since) = row[7:13]
    (has_row, r_backend, r_queue, r_path, r_priority, r_args, r_kwargs, r_status) = row[
        13:21
    ]
    (r_return, r_errors, r_workers, r_enqueued, r_started, r_last, r_finished) = row[
        21:28
    ]
    now = row[28]
    missing = compat.TaskResultDoesNotExist(f"no task result {result_id!r}")
    if has_job:
        call = json.loads(job_args)
        if not isinstance(call, dict) or call.get("backend") != backend.alias:
            raise missing
        path, args, kwargs = job_task, call.get("args", []), call.get("kwargs", {})
        queue_name, priority = call.get("queue_name"), job_priority
        run_after = _time(call.get("run_after"))
    elif has_row and r_backend == backend.alias:
        path, args, kwargs = r_path, json.loads(r_args), json.loads(r_kwargs)
        queue_name, priority, run_after = r_queue, r_priority, None
    else:
        raise missing
    try:
        task = as_enqueued(
            resolve_task(path),
            backend=backend.alias,
            queue_name=queue_name,
            priority=priority,
            run_after=run_after,
        )
    except (LookupError, compat.InvalidTask) as exc:
        raise compat.TaskResultDoesNotExist(
            f"task result {result_id!r} is of a task this code cannot load: {exc}"
        ) from exc
    errors = json.loads(r_errors) if has_row else []
    workers = json.loads(r_workers) if has_row else []
    fields: dict[str, Any] = {
        "args": args,
        "kwargs": kwargs,
        "backend": backend.alias,
        "enqueued_at": created_at if has_job else r_enqueued,
        "started_at": r_started,
        "last_attempted_at": r_last,
        "errors": errors,
        "worker_ids": workers,
    }
    if has_job and failed_at is not None:
        status = compat.TaskResultStatus.FAILED
        fields["finished_at"] = r_finished or failed_at
        if not errors:
            fields["errors"] = [error_entry(None, last_error)]
    elif has_job and running:
        status = compat.TaskResultStatus.RUNNING
        since = since or now
        fields["started_at"] = r_started or since
        fields["last_attempted_at"] = since
        fields["worker_ids"] = [*workers, worker_id_of(holder)]
    elif has_job:
        status = compat.TaskResultStatus.READY
    else:
        status = r_status
        fields["finished_at"] = r_finished
    return_value = json.loads(r_return) if r_return is not None else None
    return make_result(task, job_id, status, return_value=return_value, **fields)
