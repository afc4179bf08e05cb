"""Settings for the test suite: a real PostgreSQL named by DATABASE_URL (``make test`` sets it)."""

from __future__ import annotations

import os

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

if not os.environ.get("DATABASE_URL"):
    raise ImproperlyConfigured(
        "DATABASE_URL is not set: the tests need a real PostgreSQL. Run `make test`, which finds "
        "or starts one, or export DATABASE_URL=postgres://user@host:5432/dbname."
    )

DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("DPQ_TEST_DB_NAME", "test_dpq")}
# The same database through psycopg 3's server-side parameter binding (Django's OPTIONS
# server_side_binding; psycopg2 ignores it): tests/test_server_side_binding.py.
DATABASES["server_binding"] = {
    **DATABASES["default"],
    "OPTIONS": {**DATABASES["default"].get("OPTIONS", {}), "server_side_binding": True},
    "TEST": {"MIRROR": "default"},
}

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_tables2",
    "dpq",
    "dpq_admin",
    "dpq_scheduler",
    "tests.testapp",
    # The original README's example app, pasted as it was (tests/test_seed_readme.py).
    "tests.seedapp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"dpq": {"level": "DEBUG"}},
}

# Django's Tasks framework (tests/tasks_framework): built into Django 6, the django_tasks
# backport on Django 5.2.
from dpq.retry import FixedBackoff  # noqa: E402

try:
    import django.tasks  # noqa: F401
except ImportError:
    INSTALLED_APPS.append("django_tasks")
TASKS = {
    "default": {
        "BACKEND": "dpq.tasks.DpqBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {
            "max_attempts": 2,
            "backoff": FixedBackoff(0),
            # A worker's background prune (tests/tasks_framework/test_pruner.py).
            "prune_interval": float(os.environ.get("DPQ_TEST_PRUNE_INTERVAL", "300")),
        },
    },
}
