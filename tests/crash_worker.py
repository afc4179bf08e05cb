"""A worker process for the crash tests: run the queue until no job is ready, then exit 0.

    DATABASE_URL=... DJANGO_SETTINGS_MODULE=tests.settings python -m tests.crash_worker [LIMIT]

LIMIT is the queue's crash_limit ("none" turns crash accounting off; default 3). A task that
kills the process ends the loop early: that is what the tests count.
"""

from __future__ import annotations

import sys

import django


def main(argv: list[str]) -> int:
    django.setup()
    from dpq.queue import AtLeastOnceQueue
    from tests import tasks

    limit = argv[1] if len(argv) > 1 else "3"
    queue = AtLeastOnceQueue(
        tasks=tasks.ALL_TASKS,
        crash_limit=None if limit == "none" else int(limit),
    )
    try:
        while queue.run_once() is not None:
            pass
    finally:
        queue.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
