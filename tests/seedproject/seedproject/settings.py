"""Settings of a project written for django-postgres-queue 1.0.0 (tests/test_seed_project.py)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

SECRET_KEY = "seedproject-tests-only"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "dpq",
    "shop",
]

_url = urlsplit(os.environ["DATABASE_URL"])
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _url.path.lstrip("/"),
        "USER": _url.username or "",
        "PASSWORD": _url.password or "",
        "HOST": _url.hostname or "",
        "PORT": str(_url.port or ""),
        "TEST": {
            "NAME": os.environ.get("SEEDPROJECT_TEST_DB_NAME", "test_seedproject")
        },
    }
}

EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"dpq": {"handlers": ["console"], "level": "INFO"}},
}
