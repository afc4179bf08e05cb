"""Run the dpq benchmarks and print one table (``make bench``; see README.md, Performance).

    bench/run.py [--quick] [--only SECTION] [--rounds N]

Every figure is the median of ``--rounds`` runs (3), and the runs of figures that are
compared are interleaved, so a ratio compares two things measured under the same load.
Ratios matter; absolute numbers only describe the machine they came from.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SECTIONS = ["enqueue", "drain", "latency", "idle", "memory", "scale", "tasks"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a ~2 minute smoke run: 1 round, smaller sizes",
    )
    parser.add_argument(
        "--only",
        choices=SECTIONS,
        action="append",
        help="run only this section (repeatable)",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="runs per figure (default 3)"
    )
    return parser.parse_args(argv)


def check_dashboard_loads() -> None:
    """Leave the dashboard out (DPQ_BENCH_DASHBOARD=0) if the app does not load yet."""
    env = dict(
        os.environ, DJANGO_SETTINGS_MODULE="bench.settings", PYTHONPATH=str(ROOT)
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); django.urls.reverse('admin:index')",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        os.environ["DPQ_BENCH_DASHBOARD"] = "0"
        last = done.stderr.strip().splitlines()[-1:] or ["?"]
        print(
            f"dashboard left out: dpq_admin does not load ({last[0]})", file=sys.stderr
        )


def migrate() -> None:
    """Start from an empty schema and migrate: the bench database is scratch, and a
    migration rewritten during development must not leave an old table in the way."""
    from dpq import driver

    conn = driver.connect(os.environ["DATABASE_URL"])
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute("DROP SCHEMA public CASCADE")
            cursor.execute("CREATE SCHEMA public")
    finally:
        conn.close()
    env = dict(
        os.environ, DJANGO_SETTINGS_MODULE="bench.settings", PYTHONPATH=str(ROOT)
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "django",
            "migrate",
            "--verbosity",
            "0",
            "--skip-checks",
        ],
        env=env,
        check=True,
    )


def machine() -> dict[str, Any]:
    from bench import harness

    settings = dict(
        harness.fetch_all(
            "SELECT name, setting || COALESCE(' ' || unit, '') FROM pg_settings WHERE name = ANY(%s)",
            [
                [
                    "shared_buffers",
                    "synchronous_commit",
                    "fsync",
                    "wal_level",
                    "max_connections",
                    "work_mem",
                    "max_wal_size",
                    "checkpoint_timeout",
                    "full_page_writes",
                    "commit_delay",
                    "shared_preload_libraries",
                ]
            ],
        )
    )
    meminfo = Path("/proc/meminfo").read_text().splitlines()[0].split()
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(int(meminfo[1]) / 1024 / 1024, 1),
        "cpu": next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        ),
        "python": platform.python_version(),
        "postgresql": harness.fetch_all("SHOW server_version")[0][0],
        "postgresql_settings": settings,
        "kernel": platform.release(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    only = set(args.only or SECTIONS)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    check_dashboard_loads()
    migrate()

    import django

    django.setup()

    from bench import harness, latency, report, scale, tasks_backend, throughput
    from dpq import driver

    harness.create_tables()
    options = harness.worker_options()
    meta = machine()
    meta.update(
        command=" ".join(
            ["bench/run.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        rounds=rounds,
        driver=f"{driver.name} {sys.modules[driver.name].__version__.split()[0]}",
        worker_options=sorted(options),
        git=subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s"],
            capture_output=True,
            text=True,
        ).stdout.strip(),
    )
    print(
        f"dpq bench: {meta['nproc']} CPUs, {meta['memory_gib']} GiB, PostgreSQL "
        f"{meta['postgresql']}, {meta['driver']}, {rounds} round(s)"
        f"{' (quick)' if args.quick else ''}",
        file=sys.stderr,
    )
    quick = args.quick
    figures: list[report.Figure] = []
    timings: dict[str, float] = {}
    steps = [
        (
            "enqueue",
            lambda: throughput.enqueue_figures(
                rounds, 300 if quick else 1000, 5000 if quick else 20000
            ),
        ),
        (
            "drain",
            lambda: throughput.drain_figures(
                rounds,
                2000 if quick else 10000,
                [1, 8] if quick else [1, 2, 4, 8],
                options,
                full=not quick,
            ),
        ),
        ("latency", lambda: latency.pickup_figures(rounds, 200 if quick else 1000)),
        ("idle", lambda: latency.idle_figures(5 if quick else 10)),
        (
            "memory",
            lambda: latency.memory_figures(
                2000 if quick else 5000, 20000 if quick else 100000, options
            ),
        ),
        ("scale", lambda: scale.scale_figures(rounds, quick=quick)),
        (
            "tasks",
            lambda: tasks_backend.tasks_figures(
                rounds, 500 if quick else 2000, 500 if quick else 2000
            ),
        ),
    ]
    try:
        for name, step in steps:
            if name not in only:
                continue
            print(f"== {name}", file=sys.stderr, flush=True)
            started = time.monotonic()
            figures.extend(step())
            timings[name] = round(time.monotonic() - started, 1)
    finally:
        harness.reset()
    meta["section_seconds"] = timings
    print()
    print(report.table(figures))
    extra = report.notes(figures)
    if extra:
        print()
        print(extra)
    path = report.save(figures, meta)
    print(
        f"\nJSON: {path.relative_to(ROOT)}; sections took {timings} s", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
