"""Enqueue rates, and the drain of N no-op jobs by dpq_worker against the bare loop."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from bench import bare, harness, original, queues
from bench.report import Figure, Target
from dpq import driver, pauses, sql

SECTION_ENQUEUE = "enqueue"
SECTION_DRAIN = "drain"

# Delivery modes and crash accounting: (label, attribute in bench.queues).
VARIANTS = [
    ("at-least-once, crash accounting", "at_least_once"),
    ("at-least-once, no crash accounting", "at_least_once_unaccounted"),
    ("at-most-once", "at_most_once"),
]


@dataclass(frozen=True)
class Config:
    """Connections of a dpq worker run: how it is started and how many claim at once."""

    label: str
    args: tuple[str, ...]
    connections: int
    # Environment variables of the worker process (bench/settings.py reads them).
    env: tuple[tuple[str, str], ...] = ()
    # Another queue, paused while the worker drains (dpq.pauses).
    paused: str | None = None


def enqueue_figures(rounds: int, count_one: int, count_many: int) -> list[Figure]:
    queue = queues.at_least_once
    chunk = 1000

    def one_by_one() -> float:
        harness.reset()
        harness.settle()
        started = time.perf_counter()
        for _ in range(count_one):
            queue.enqueue("noop", {})
        return count_one / (time.perf_counter() - started)

    def one_by_one_in_transaction() -> float:
        harness.reset()
        harness.settle()
        started = time.perf_counter()
        with transaction.atomic():
            for _ in range(count_one):
                queue.enqueue("noop", {})
        return count_one / (time.perf_counter() - started)

    def many() -> float:
        harness.reset()
        harness.settle()
        items = [("noop", {})] * chunk
        started = time.perf_counter()
        for _ in range(count_many // chunk):
            queue.enqueue_many(items)
        return count_many / (time.perf_counter() - started)

    samples = harness.interleave(
        rounds,
        {
            "one": one_by_one,
            "one_tx": one_by_one_in_transaction,
            "many": many,
        },
    )
    base = samples["one"].median
    return [
        Figure(
            SECTION_ENQUEUE,
            f"enqueue one by one, autocommit ({count_one:,} jobs)",
            base,
            "jobs/s",
            samples["one"].values,
            note="a commit (and WAL flush) per job, as from a web request",
        ),
        Figure(
            SECTION_ENQUEUE,
            f"enqueue one by one in one transaction ({count_one:,} jobs)",
            samples["one_tx"].median,
            "jobs/s",
            samples["one_tx"].values,
            "one by one",
            base,
        ),
        Figure(
            SECTION_ENQUEUE,
            f"enqueue_many, {chunk:,} per call ({count_many:,} jobs)",
            samples["many"].median,
            "jobs/s",
            samples["many"].values,
            "one by one",
            base,
            Target(">=", 10),
        ),
    ]


# The bare loop's other shapes (bench/bare.py), at 8 connections: (figure name, note).
SHAPE_FIGURES = {
    "atomic": (
        "bare loop with an at-least-once job's statements, 8 connections",
        "BEGIN, dpq's prepared claim, SAVEPOINT, SET CONSTRAINTS ALL IMMEDIATE, RELEASE "
        "SAVEPOINT, COMMIT on the driver, no Django: the most an at-least-once worker "
        "could reach without its Python",
    ),
    "django": (
        "the same statements through Django's transaction.atomic(), 8 threads",
        "one process, a Django connection per thread, atomic() around the claim and "
        "around the task, no dpq: the most a worker made of atomic() blocks could reach",
    ),
}


def drain_configs(
    threads: list[int], options: set[str], batch: int
) -> tuple[list[Config], list[Config], list[str]]:
    """The one-job-per-transaction configs, the batched ones, and notes on what is missing."""
    configs = [
        Config(f"{n} thread{'s' if n > 1 else ''}", ("--threads", str(n)), n)
        for n in threads
    ]
    missing = []
    if "--processes" in options:
        configs.append(
            Config("2 processes x 4 threads", ("--processes", "2", "--threads", "4"), 8)
        )
    else:
        missing.append("--processes")
    batched = []
    if "--batch" in options:
        batch_args = ("--batch", str(batch))
        if "--batch-ms" in options:
            batch_args += ("--batch-ms", "50")
        batched.append(
            Config(f"8 threads, --batch {batch}", ("--threads", "8", *batch_args), 8)
        )
        if "--processes" in options:
            batched.append(
                Config(
                    f"2 processes x 4 threads, --batch {batch}",
                    ("--processes", "2", "--threads", "4", *batch_args),
                    8,
                )
            )
    else:
        missing.append("--batch")
    return configs, batched, missing


def metered_configs(
    configs: list[Config], options: set[str]
) -> list[tuple[str, Config, Config]]:
    """The 8-connection configs again with --metrics-port, and 8 threads without the
    throughput history: (what is compared, the config with it, the config without it)."""
    if "--metrics-port" not in options:
        return []
    eight = next(c for c in configs if c.label == "8 threads")
    unrecorded = Config(
        "8 threads, DPQ_THROUGHPUT = False",
        eight.args,
        8,
        (("DPQ_BENCH_THROUGHPUT", "0"),),
    )
    return [("throughput history kept", eight, unrecorded)] + [
        (
            "Prometheus metrics served",
            Config(
                f"{config.label}, --metrics-port",
                (*config.args, "--metrics-port", "{port}"),
                config.connections,
            ),
            config,
        )
        for config in configs
        if config.connections == 8
    ]


def paused_configs(configs: list[Config]) -> list[tuple[str, Config, Config]]:
    """8 threads while another queue is paused, against 8 threads: the claim's cost of pauses."""
    eight = next((c for c in configs if c.label == "8 threads"), None)
    if eight is None:
        return []
    paused = Config(
        "8 threads, queue 'elsewhere' paused", eight.args, 8, paused="elsewhere"
    )
    return [("another queue paused", paused, eight)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def drain_figures(
    rounds: int,
    jobs: int,
    threads: list[int],
    options: set[str],
    *,
    batch: int = 100,
    full: bool = True,
) -> list[Figure]:
    """Drain ``jobs`` no-op jobs with each config, interleaved, against the bare loop."""
    configs, batched, missing = drain_configs(threads, options, batch)
    dsn = os.environ["DATABASE_URL"]
    bare_sizes = sorted({c.connections for c in configs + batched})

    def jobs_for(connections: int) -> int:
        # Fewer jobs for fewer connections: one connection commits ~100-1,000 times a
        # second depending on the disk, and the rate, not the count, is the figure.
        return max(min(500, jobs), jobs * connections // 8)

    dpq_claim = sql.prepared_claim()

    def bare_case(n: int, shape: str = "claim") -> Callable[[], float]:
        """The bare loop at ``n`` connections, one of bare.SHAPES; its CPU per job noted."""
        key = f"bare:{n}" if shape == "claim" else f"shape:{shape}"

        def case() -> float:
            jobs = jobs_for(n)
            harness.reset()
            harness.insert_jobs(jobs)
            harness.settle()
            seconds, claimed, cpu = bare.drain(dsn, queues.NAME, n, shape, dpq_claim)
            if claimed != jobs:
                raise RuntimeError(f"the {shape} loop claimed {claimed} of {jobs} jobs")
            if cpu is not None:
                cpu_per_job.setdefault(key, []).append(cpu / jobs)
            return jobs / seconds

        return case

    def dpq_case(queue_attr: str, config: Config) -> Callable[[], float]:
        def case() -> float:
            jobs = jobs_for(config.connections)
            harness.reset()
            harness.insert_marked_drain(jobs)
            harness.settle()
            port = str(free_port())
            if config.paused:
                pauses.pause_queue(config.paused, by="bench")
            try:
                harness.run_worker(
                    queue_attr,
                    [arg.replace("{port}", port) for arg in config.args],
                    env=dict(config.env),
                )
            finally:
                if config.paused:
                    pauses.resume_queue(config.paused)
            left = harness.count_jobs()
            seconds = harness.marked_seconds()
            if left or seconds is None:
                raise RuntimeError(
                    f"dpq_worker {queue_attr} {config.args} left {left} jobs behind"
                )
            # One process's CPU: only a worker without --processes has it all.
            cpu = None if "--processes" in config.args else harness.marked_cpu()
            if cpu is not None:
                cpu_per_job.setdefault(f"{queue_attr}:{config.label}", []).append(
                    cpu / jobs
                )
            return jobs / seconds

        return case

    def original_case(n: int) -> Callable[[], float]:
        def case() -> float:
            return original.drain_rates(dsn, n, jobs_for(n), 1)[0]

        return case

    original_sizes = [1, 4, 8] if full else []
    original_missing = ""
    if original_sizes:
        try:
            original.ensure_venv()
        except (OSError, subprocess.CalledProcessError) as exc:
            original_sizes, original_missing = [], str(exc)

    # CPU seconds per job of the bare loop's processes and of single-process workers.
    cpu_per_job: dict[str, list[float]] = {}
    cases: dict[str, Callable[[], float]] = {}
    for n in bare_sizes:
        cases[f"bare:{n}"] = bare_case(n)
    for n in original_sizes:
        cases[f"original:{n}"] = original_case(n)
    if full and 8 in bare_sizes:
        cases["shape:atomic"] = bare_case(8, "atomic")
        cases["shape:django"] = bare_case(8, "django")
    for _label, attr in VARIANTS:
        for config in configs:
            if not full and attr != "at_least_once" and config.connections != 8:
                continue
            cases[f"{attr}:{config.label}"] = dpq_case(attr, config)
    for config in batched:
        cases[f"at_least_once:{config.label}"] = dpq_case("at_least_once", config)
    metered = metered_configs(configs, options) + paused_configs(configs)
    for _, with_it, without in metered:
        for config in (with_it, without):
            cases.setdefault(
                f"at_least_once:{config.label}", dpq_case("at_least_once", config)
            )
    samples = harness.interleave(rounds, cases)

    figures = []
    for n in bare_sizes:
        s = samples[f"bare:{n}"]
        figures.append(
            Figure(
                SECTION_DRAIN,
                f"bare loop, {n} connection{'s' if n > 1 else ''} "
                f"({jobs_for(n):,} jobs; the limit)",
                s.median,
                "jobs/s",
                s.values,
                note=(
                    f"1 job per transaction, {driver.name}, 1 process per connection; timed "
                    "from the release of the connected processes to the last commit"
                )
                if n == bare_sizes[0]
                else "",
            )
        )
    for shape, (name, note) in SHAPE_FIGURES.items():
        s = samples.get(f"shape:{shape}")
        if s is not None:
            figures.append(
                Figure(
                    SECTION_DRAIN,
                    name,
                    s.median,
                    "jobs/s",
                    s.values,
                    "bare 8",
                    samples["bare:8"].median,
                    note=note,
                )
            )
    django_loop, dpq_eight = (
        samples.get("shape:django"),
        samples.get("at_least_once:8 threads"),
    )
    if django_loop is not None and dpq_eight is not None:
        figures.append(
            Figure(
                SECTION_DRAIN,
                "dpq at-least-once, crash accounting, 8 threads, against that loop",
                dpq_eight.median,
                "jobs/s",
                dpq_eight.values,
                "Django atomic() loop, 8 threads",
                django_loop.median,
                note="what dpq's own Python costs on top of Django's",
            )
        )
    for label, attr in VARIANTS:
        for config in configs:
            s = samples.get(f"{attr}:{config.label}")
            if s is None:
                continue
            figures.append(
                Figure(
                    SECTION_DRAIN,
                    f"dpq {label}, {config.label} "
                    f"({jobs_for(config.connections):,} jobs)",
                    s.median,
                    "jobs/s",
                    s.values,
                    f"bare {config.connections}",
                    samples[f"bare:{config.connections}"].median,
                    drain_target(attr, config),
                    note=(
                        "timed from the first job's start to the last's (two marker "
                        "jobs), so process start-up and exit are left out"
                    )
                    if not figures[-1].name.startswith("dpq")
                    else "",
                )
            )
    figures += cpu_figures(cpu_per_job, configs)
    figures += original_figures(samples, configs, original_sizes, jobs_for)
    if original_missing:
        figures.append(
            Figure(
                SECTION_DRAIN,
                "original django-postgres-queue 1.0.0",
                None,
                "",
                note=f"skipped: its virtualenv could not be made ({original_missing})",
            )
        )
    for config in configs:
        on = samples.get(f"at_least_once:{config.label}")
        off = samples.get(f"at_least_once_unaccounted:{config.label}")
        if on is None or off is None or config.connections != 8:
            continue
        figures.append(
            Figure(
                SECTION_DRAIN,
                f"crash accounting kept, {config.label}",
                on.median,
                "jobs/s",
                on.values,
                "no crash accounting",
                off.median,
                Target(">=", 0.8),
            )
        )
    for what, with_it, without in metered:
        on = samples[f"at_least_once:{with_it.label}"]
        off = samples[f"at_least_once:{without.label}"]
        figures.append(
            Figure(
                SECTION_DRAIN,
                f"{what}, {with_it.label}",
                on.median,
                "jobs/s",
                on.values,
                without.label,
                off.median,
                Target(">=", 0.9),
            )
        )
        cpu_on = cpu_per_job.get(f"at_least_once:{with_it.label}")
        cpu_off = cpu_per_job.get(f"at_least_once:{without.label}")
        if cpu_on and cpu_off:
            figures.append(
                cpu_figure(
                    f"{what}, {with_it.label}",
                    cpu_on,
                    without.label,
                    cpu_off,
                    Target("<=", 1.1),
                )
            )
    for config in batched:
        s = samples[f"at_least_once:{config.label}"]
        figures.append(
            Figure(
                SECTION_DRAIN,
                f"dpq at-least-once, crash accounting, {config.label}",
                s.median,
                "jobs/s",
                s.values,
                "bare 8",
                samples["bare:8"].median,
                Target(">=", 3),
            )
        )
    for option in missing:
        figures.append(
            Figure(
                SECTION_DRAIN,
                f"dpq_worker {option}",
                None,
                "",
                note=f"skipped: `dpq_worker --help` does not list {option} in this checkout",
            )
        )
    return figures


def drain_target(attr: str, config: Config) -> Target | None:
    """At 8 connections: the default mode (at-least-once, crash accounting) at least 0.8 of
    the bare loop, the other modes 0.75."""
    if config.connections != 8:
        return None
    return Target(">=", 0.8 if attr == "at_least_once" else 0.75)


def cpu_figures(
    cpu_per_job: dict[str, list[float]], configs: list[Config]
) -> list[Figure]:
    """The worker process's CPU per no-op job against the bare loop's, at 8 connections."""
    base = cpu_per_job.get("bare:8")
    figures = []
    for shape, (name, _) in SHAPE_FIGURES.items():
        values = cpu_per_job.get(f"shape:{shape}")
        if values and base:
            figures.append(cpu_figure(name.rsplit(", ", 1)[0], values, "bare 8", base))
    for config in configs:
        values = cpu_per_job.get(f"at_least_once:{config.label}")
        if config.connections != 8 or not values or not base:
            continue
        figures.append(
            cpu_figure(
                f"dpq at-least-once, crash accounting, {config.label}",
                values,
                "bare 8",
                base,
                Target("<=", 1.5),
                note="user + system CPU of the worker process between the two marks, "
                "per job; the bare loop's processes over their drain",
            )
        )
    return figures


def cpu_figure(
    name: str,
    values: list[float],
    baseline_name: str,
    baseline: list[float],
    target: Target | None = None,
    note: str = "",
) -> Figure:
    """CPU seconds per job (each run's) as a figure in µs against a baseline's runs."""
    return Figure(
        SECTION_DRAIN,
        f"CPU per no-op job, {name}",
        statistics.median(values) * 1e6,
        "µs",
        [v * 1e6 for v in values],
        baseline_name,
        statistics.median(baseline) * 1e6,
        target,
        note=note,
    )


def original_figures(
    samples: dict[str, Any],
    configs: list[Config],
    sizes: list[int],
    jobs_for: Callable[[int], int],
) -> list[Figure]:
    """The original package's drains, and dpq's best at 8 connections against its best."""
    figures = []
    for n in sizes:
        s = samples[f"original:{n}"]
        figures.append(
            Figure(
                SECTION_DRAIN,
                f"original django-postgres-queue 1.0.0, {n} process"
                f"{'es' if n > 1 else ''} ({jobs_for(n):,} jobs)",
                s.median,
                "jobs/s",
                s.values,
                f"bare {n}",
                samples[f"bare:{n}"].median,
                note="its AtLeastOnceQueue.run_once() in a loop per process, as its "
                "Worker command runs it; in a virtualenv and a database of its own"
                if n == sizes[0]
                else "",
            )
        )
    dpq = [
        (samples[f"at_least_once:{c.label}"].median, c.label)
        for c in configs
        if c.connections == 8 and f"at_least_once:{c.label}" in samples
    ]
    if sizes and dpq:
        best, label = max(dpq)
        original_best, n = max((samples[f"original:{n}"].median, n) for n in sizes)
        figures.append(
            Figure(
                SECTION_DRAIN,
                f"dpq at-least-once, crash accounting, best at 8 connections ({label})",
                best,
                "jobs/s",
                [],
                f"original at its best ({n} processes)",
                original_best,
                Target(">=", 1.5),
            )
        )
    return figures
