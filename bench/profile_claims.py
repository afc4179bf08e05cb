"""Where a worker thread's time goes per no-op job: CPU, statements, and a profile.

    DATABASE_URL=... python bench/profile_claims.py [--jobs N] [--prof] [--queue ATTR]

Runs one ``WorkerThread`` of a pool configured for ``--threads`` threads (8 by default: the
path every thread of ``--threads 8`` takes; 1 is the solo path, a start record per job) in this
process, on ``N`` no-op jobs of bench.queues, and prints its CPU per job, the statements it
sent through Django per job, and with ``--prof`` the functions that took the most time
(cProfile). CPU counts are steadier than wall times on a busy machine.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django

django.setup()

from django.db import connection  # noqa: E402

from bench import harness, queues  # noqa: E402
from dpq import driver  # noqa: E402
from dpq.threads import WorkerThread  # noqa: E402
from dpq.worker import WorkerOptions, WorkerPool  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=8, help="the pool's --threads")
    parser.add_argument("--prof", action="store_true", help="print a cProfile summary")
    parser.add_argument(
        "--queue", default="at_least_once", help="bench.queues attribute"
    )
    args = parser.parse_args()

    harness.create_tables()
    harness.reset()
    harness.insert_jobs(args.jobs)
    harness.settle()
    queue = getattr(queues, args.queue)
    connection.close()  # the thread connects as a worker's does (crash accounting kept open)
    pool = WorkerPool(queue, WorkerOptions(threads=args.threads))
    thread = WorkerThread(pool, 0)
    statements: list[str] = []

    def count(execute, sql, params, many, context):
        statements.append(sql.split()[0].upper() if sql.strip() else "")
        return execute(sql, params, many, context)

    profile = cProfile.Profile() if args.prof else None
    with connection.execute_wrapper(count):
        thread.run_one()  # connects and prepares: not counted
        statements.clear()
        ran = 0
        cpu, wall = time.process_time(), time.perf_counter()
        if profile:
            profile.enable()
        while thread.run_one():
            ran += 1
        if profile:
            profile.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    connection.close()
    kinds: dict[str, int] = {}
    for kind in statements:
        kinds[kind] = kinds.get(kind, 0) + 1
    print(f"{driver.name}, {args.queue}, --threads {args.threads}, {ran} jobs")
    print(
        f"CPU per job: {cpu / ran * 1e6:.0f} µs; wall per job: {wall / ran * 1e6:.0f} µs"
    )
    print(
        "statements through Django per job: "
        + ", ".join(f"{k} {v / ran:.2f}" for k, v in sorted(kinds.items()))
        + " (plus the driver's own BEGIN and COMMIT)"
    )
    if profile:
        pstats.Stats(profile).sort_stats(
            os.environ.get("DPQ_PROFILE_SORT", "tottime")
        ).print_stats(int(os.environ.get("DPQ_PROFILE_LINES", "25")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
