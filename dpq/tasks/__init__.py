"""dpq as a backend of Django's Tasks framework: ``TASKS = {"default": {"BACKEND":
"dpq.tasks.DpqBackend"}}``. Works with ``django.tasks`` (Django 6) and with the
``django_tasks`` backport (Django 5.2, the ``[tasks]`` extra)."""

from __future__ import annotations

from dpq.tasks.backend import DpqBackend

__all__ = ["DpqBackend"]
