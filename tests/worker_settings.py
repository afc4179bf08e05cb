"""Settings for worker subprocesses started by tests/worker: the test settings, logging to stderr.

The tests read the worker's log from the file its stderr goes to, so every ``dpq`` record is
printed, with the thread that wrote it.
"""

from __future__ import annotations

from tests.settings import *  # noqa: F403

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "worker": {
            "format": "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "worker",
            "level": "DEBUG",
        }
    },
    "loggers": {"dpq": {"handlers": ["console"], "level": "DEBUG", "propagate": False}},
}
