"""Settings for worker subprocesses started by tests/worker: the test settings, logging to stderr.

The tests read the worker's log from the file its stderr goes to, so every ``dpq`` record is
printed, with the thread that wrote it.
"""

from __future__ import annotations

import json
import os

from tests.settings import *  # noqa: F403

# DPQ_TEST_DATABASE: JSON keys that replace those of DATABASES["default"], OPTIONS merged
# (a host list "a,b" with its ports "p1,p2", target_session_attrs, keepalives ...).
if os.environ.get("DPQ_TEST_DATABASE"):
    _override = json.loads(os.environ["DPQ_TEST_DATABASE"])
    _options = {
        **DATABASES["default"].get("OPTIONS", {}),  # noqa: F405
        **_override.pop("OPTIONS", {}),
    }
    DATABASES["default"].update(_override, OPTIONS=_options)  # noqa: F405

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

# DPQ_TEST_ISOLATION=serializable runs the worker's transactions at SERIALIZABLE.
if os.environ.get("DPQ_TEST_ISOLATION") == "serializable":
    from dpq import driver

    # Each driver numbers its isolation levels its own way.
    if driver.is_psycopg3:
        from psycopg import IsolationLevel

        serializable = IsolationLevel.SERIALIZABLE
    else:
        from psycopg2.extensions import ISOLATION_LEVEL_SERIALIZABLE as serializable

    DATABASES["default"]["OPTIONS"] = {  # noqa: F405
        **DATABASES["default"].get("OPTIONS", {}),  # noqa: F405
        "isolation_level": serializable,
    }
