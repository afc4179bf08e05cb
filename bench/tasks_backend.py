"""Django's Tasks framework on dpq (``--only tasks``): DpqBackend against dpq's own API, and
against django-tasks-db's ``db_worker`` on the same server.

Three comparisons, their runs interleaved round by round:

- the drain of N no-op ``@task``s by ``dpq_worker --backend default --threads 8`` against N
  no-op jobs by ``dpq_worker bench.queues.at_least_once --threads 8`` (crash accounting on in
  both, as the backend's default ``crash_limit`` has it);
- ``task.enqueue()`` against ``queue.enqueue()``, one by one in autocommit, both with a
  NOTIFY (the backend's default ``notify``);
- the same N no-op tasks drained by django-tasks-db's ``db_worker --batch`` in 1 and in 4
  processes (bench/tasks_db.py), against dpq's drain, one task per transaction and with
  ``dpq_worker --batch 100`` (``db_worker``'s ``--batch`` only makes it exit when done).

Drains are timed from the first mark task's start to the last's, so start-up is left out.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable

from bench import harness, queues, tasks_db
from bench.report import Figure, Target

SECTION = "tasks"
BACKEND = "default"
BATCH = 100
DB_WORKER_PROCESSES = (1, 4)


def available() -> str:
    """Why the section cannot run here, or "" when it can."""
    from django.conf import settings

    if not getattr(settings, "TASKS", None):
        return "no Tasks framework here (Django 6's django.tasks, or the backport django-tasks)"
    return ""


def _backend():
    from dpq.tasks.compat import task_backends

    return task_backends[BACKEND]


def reset() -> None:
    harness.reset()
    harness.execute("TRUNCATE dpq_taskresult")


def fill_tasks(count: int) -> str:
    """``count`` no-op task jobs as ``noop.enqueue()`` writes them, and the two marks."""
    from bench import framework_tasks

    queue = _backend().queue()
    call = {"args": [], "kwargs": {}, "backend": BACKEND, "queue_name": "default"}
    harness.execute(
        """
        INSERT INTO dpq_job (created_at, execute_at, priority, task, args, queue)
        SELECT now(), now(), 0, %s, %s::jsonb, %s FROM generate_series(1, %s)
        """,
        [framework_tasks.noop.module_path, json.dumps(call), queue.name, count],
    )
    framework_tasks.enqueue_marks()
    return queue.name


def run_backend_worker(args: tuple[str, ...]) -> None:
    done = subprocess.run(
        harness.django_command(
            "dpq_worker", "--backend", BACKEND, *args, "--burst", "--verbosity", "0"
        ),
        env=harness.worker_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"dpq_worker --backend {BACKEND} exited {done.returncode}:\n"
            f"{done.stderr[-3000:]}"
        )


def tasks_figures(rounds: int, jobs: int, enqueues: int) -> list[Figure]:
    reason = available()
    if reason:
        return [Figure(SECTION, "Tasks framework", None, "", note=f"skipped: {reason}")]
    from bench import framework_tasks

    threads = ("--threads", "8")
    dsn = os.environ["DATABASE_URL"]

    def drain_tasks(args: tuple[str, ...] = threads) -> Callable[[], float]:
        def case() -> float:
            reset()
            queue_name = fill_tasks(jobs)
            harness.settle()
            run_backend_worker(args)
            left, seconds = harness.count_jobs(queue_name), harness.marked_seconds()
            if left or seconds is None:
                raise RuntimeError(f"dpq_worker --backend left {left} tasks behind")
            return jobs / seconds

        return case

    def drain_jobs() -> float:
        reset()
        harness.insert_marked_drain(jobs)
        harness.settle()
        harness.run_worker("at_least_once", threads)
        left, seconds = harness.count_jobs(), harness.marked_seconds()
        if left or seconds is None:
            raise RuntimeError(f"dpq_worker at_least_once left {left} jobs behind")
        return jobs / seconds

    def enqueue_tasks() -> float:
        reset()
        harness.settle()
        started = time.perf_counter()
        for _ in range(enqueues):
            framework_tasks.noop.enqueue()
        return enqueues / (time.perf_counter() - started)

    def enqueue_jobs() -> float:
        reset()
        harness.settle()
        queue = queues.at_least_once_listen
        started = time.perf_counter()
        for _ in range(enqueues):
            queue.enqueue("noop", {})
        return enqueues / (time.perf_counter() - started)

    def db_worker(processes: int) -> Callable[[], float]:
        def case() -> float:
            return tasks_db.drain_rates(dsn, processes, jobs, 1)[0]

        return case

    cases: dict[str, Callable[[], float]] = {
        "drain:tasks": drain_tasks(),
        "drain:tasks-batch": drain_tasks((*threads, "--batch", str(BATCH))),
        "drain:jobs": drain_jobs,
        "enqueue:tasks": enqueue_tasks,
        "enqueue:jobs": enqueue_jobs,
    }
    tasks_db_missing = ""
    try:
        tasks_db.ensure_venv()
        tasks_db_version = tasks_db.version()
    except (OSError, subprocess.CalledProcessError) as exc:
        tasks_db_missing = str(exc)
    else:
        for n in DB_WORKER_PROCESSES:
            cases[f"db_worker:{n}"] = db_worker(n)
    samples = harness.interleave(rounds, cases)
    reset()

    drained, enqueued = samples["drain:tasks"], samples["enqueue:tasks"]
    figures = [
        Figure(
            SECTION,
            f"dpq_worker --backend, 8 threads ({jobs:,} no-op @tasks)",
            drained.median,
            "tasks/s",
            drained.values,
            "dpq's own API, 8 threads",
            samples["drain:jobs"].median,
            Target(">=", 0.8),
            note="the same number of no-op jobs of an AtLeastOnceQueue (crash "
            "accounting on in both); timed from the first mark task to the last",
        ),
        Figure(
            SECTION,
            f"task.enqueue() one by one, autocommit ({enqueues:,} tasks)",
            enqueued.median,
            "tasks/s",
            enqueued.values,
            "queue.enqueue()",
            samples["enqueue:jobs"].median,
            Target(">=", 0.8),
            note="both with a NOTIFY (the backend's default notify=True)",
        ),
    ]
    if tasks_db_missing:
        figures.append(
            Figure(
                SECTION,
                f"django-tasks-db {tasks_db.VERSION} db_worker",
                None,
                "",
                note=f"skipped: {tasks_db_missing}",
            )
        )
        return figures
    for n in DB_WORKER_PROCESSES:
        s = samples[f"db_worker:{n}"]
        figures.append(
            Figure(
                SECTION,
                f"django-tasks-db {tasks_db_version} db_worker, {n} process"
                f"{'es' if n > 1 else ''} ({jobs:,} no-op @tasks)",
                s.median,
                "tasks/s",
                s.values,
                note="db_worker --batch per process, CONN_MAX_AGE=None (else it "
                "reconnects for every task); a database of its own on the same server"
                if n == DB_WORKER_PROCESSES[0]
                else "",
            )
        )
    best, n = max((samples[f"db_worker:{n}"].median, n) for n in DB_WORKER_PROCESSES)
    figures.append(
        Figure(
            SECTION,
            "dpq_worker --backend, 8 threads, against db_worker at its best",
            drained.median,
            "tasks/s",
            [],
            f"db_worker, {n} process{'es' if n > 1 else ''}",
            best,
            Target(">=", 10),
        )
    )
    batched = samples["drain:tasks-batch"]
    figures.append(
        Figure(
            SECTION,
            f"dpq_worker --backend, 8 threads, --batch {BATCH}, against db_worker at its best",
            batched.median,
            "tasks/s",
            batched.values,
            f"db_worker, {n} process{'es' if n > 1 else ''}",
            best,
            Target(">=", 10),
            note="each task still in a savepoint of its own, its result written in it; "
            "one commit per batch",
        )
    )
    return figures
