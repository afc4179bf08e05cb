"""Settings of the demo project, and an example for your own.

The parts a project using dpq needs are INSTALLED_APPS (``dpq``, and ``dpq_admin`` with
``django_tables2`` for the dashboard: the ``[admin]`` extra), DPQ_QUEUE and LOGGING; the rest is a
plain Django project.
"""

from __future__ import annotations

import os

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

# A demo, run on 127.0.0.1 only: debug pages on, a published secret key. Never deploy this.
DEBUG = True
SECRET_KEY = "demo-only-not-secret-do-not-deploy"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "dpq",
    "dpq_admin",
    "django_tables2",
    "demo",
]

# Django's Tasks framework, run by dpq (demo/notifications.py): built into Django 6; on
# Django 5.2 it is the django_tasks backport (pip install "django-postgres-queue[tasks]").
try:
    import django.tasks  # noqa: F401
except ImportError:
    INSTALLED_APPS.append("django_tasks")
TASKS = {
    "default": {
        "BACKEND": "dpq.tasks.DpqBackend",
        "QUEUES": ["default"],
        "OPTIONS": {"max_attempts": 3, "result_retention": 24 * 3600},
    }
}

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_project.urls"
WSGI_APPLICATION = "demo_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# dpq needs PostgreSQL. `make demo` finds or starts one and sets DATABASE_URL.
if not os.environ.get("DATABASE_URL"):
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. Run `make demo`, which finds or starts a PostgreSQL and "
        "sets it, or export DATABASE_URL=postgres://user@host:5432/dbname yourself."
    )
DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The queue that `manage.py dpq_worker` runs when no queue is named on its command line.
DPQ_QUEUE = "demo.queue.queue"

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = True

STATIC_URL = "static/"

# dpq logs under the "dpq" logger and adds no handler of its own: without an entry like
# this one a worker says nothing. INFO shows the worker's start, every job that succeeds
# (with its duration), retries (WARNING) and jobs kept as failed (ERROR).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "console": {
            "format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s",
            "datefmt": "%H:%M:%S",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "console",
        },
    },
    "loggers": {
        "dpq": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "demo": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
