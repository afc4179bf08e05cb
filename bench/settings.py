"""Django settings for the benchmarks: the database named by DATABASE_URL, quiet logs.

The dashboard app is installed when it exists (``dpq_admin.admin``) unless
``DPQ_BENCH_DASHBOARD=0``; bench/run.py sets that when the app fails to load, so a
dashboard still being built never stops the queue benchmarks.
"""

from __future__ import annotations

import importlib.util
import os

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

if not os.environ.get("DATABASE_URL"):
    raise ImproperlyConfigured(
        "DATABASE_URL is not set: the benchmarks need a PostgreSQL database of their own. "
        "Run `make bench`, or export DATABASE_URL=postgres://user@host:5432/dpq_bench."
    )

DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}

HAS_DASHBOARD = (
    os.environ.get("DPQ_BENCH_DASHBOARD", "1") != "0"
    and importlib.util.find_spec("dpq_admin") is not None
    and importlib.util.find_spec("dpq_admin.admin") is not None
)

# DPQ_BENCH_THROUGHPUT=0: a worker without the throughput history, to measure its cost.
DPQ_THROUGHPUT = os.environ.get("DPQ_BENCH_THROUGHPUT", "1") != "0"

SECRET_KEY = "bench-only-not-secret"
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
    "dpq",
]
if HAS_DASHBOARD:
    INSTALLED_APPS += ["django_tables2", "dpq_admin"]

# Django's Tasks framework, run by dpq (bench/tasks_backend.py): Django 6's django.tasks,
# else the backport when it is installed.
HAS_TASKS = importlib.util.find_spec("django.tasks") is not None
if not HAS_TASKS and importlib.util.find_spec("django_tasks") is not None:
    HAS_TASKS = True
    INSTALLED_APPS += ["django_tasks"]
if HAS_TASKS:
    TASKS = {"default": {"BACKEND": "dpq.tasks.DpqBackend"}}

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "bench.urls"
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

# Quiet: a benchmark that prints a line per job measures the terminal.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "dpq": {"handlers": ["console"], "level": "WARNING", "propagate": False}
    },
}
