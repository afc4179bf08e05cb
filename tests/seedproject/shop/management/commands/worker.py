"""The shop's worker: the original README's command, plus a --drain mode for cron that
runs what is queued and exits, and a word on the way out."""

from __future__ import annotations

import signal

from dpq.commands import Worker

from shop.queue import queue


class Command(Worker):
    queue = queue

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--drain", action="store_true", help="Run the queued jobs, then exit."
        )

    def handle(self, **options):
        if not options["drain"]:
            return super().handle(**options)
        self._shutdown = False
        self._in_task = False
        signal.signal(signal.SIGTERM, self.handle_shutdown)
        try:
            self.run_available_tasks()
        except InterruptedError:
            pass
        self.stdout.write("drained the queue")

    def handle_shutdown(self, sig, frame):
        self.stdout.write("stopping on signal %s" % sig)
        self.stdout.flush()
        super().handle_shutdown(sig, frame)
