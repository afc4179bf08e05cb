"""Django's Tasks framework from where it lives: ``django.tasks`` (Django 6), else the backport.

Django 6 ships the framework as ``django.tasks``; on Django 5.2 it is the ``django_tasks``
package (``pip install "django-postgres-queue[tasks]"``). The backport 0.12 still spells two
exceptions the old way (``InvalidTaskError``, ``InvalidTaskBackendError``); both spellings
are exported here under Django 6's names. Everything of the framework dpq uses is imported
from this module only.
"""

from __future__ import annotations

import inspect

from django.core.exceptions import ImproperlyConfigured

try:
    from django.tasks import (
        DEFAULT_TASK_QUEUE_NAME,
        Task,
        TaskContext,
        TaskResult,
        TaskResultStatus,
        task_backends,
    )
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY, TaskError
    from django.tasks.exceptions import (
        InvalidTask,
        InvalidTaskBackend,
        TaskResultDoesNotExist,
    )
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json

    HOME = "django.tasks"
except ImportError:
    try:
        import django_tasks  # noqa: F401
    except ImportError as exc:
        raise ImproperlyConfigured(
            "dpq.tasks needs Django's Tasks framework: Django 6 has it as django.tasks; on "
            'Django 5.2 install the backport with pip install "django-postgres-queue[tasks]" '
            "(the django-tasks package) and add 'django_tasks' to INSTALLED_APPS"
        ) from exc
    from django_tasks import (
        DEFAULT_TASK_QUEUE_NAME,
        TaskContext,
        TaskResult,
        TaskResultStatus,
        task_backends,
    )
    from django_tasks import exceptions as _exceptions
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY, Task, TaskError
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started
    from django_tasks.utils import normalize_json

    # 0.12 names them InvalidTaskError and InvalidTaskBackendError; later ones as Django 6.
    InvalidTask = (
        getattr(_exceptions, "InvalidTask", None) or _exceptions.InvalidTaskError
    )
    InvalidTaskBackend = (
        getattr(_exceptions, "InvalidTaskBackend", None)
        or _exceptions.InvalidTaskBackendError
    )
    HOME = "django_tasks"


def exception_path(exc: BaseException) -> str:
    """The import path of an exception's class, as TaskError.exception_class_path has it."""
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def is_coroutine_task(task: Task) -> bool:
    return inspect.iscoroutinefunction(task.func)


__all__ = [
    "DEFAULT_TASK_QUEUE_NAME",
    "HOME",
    "TASK_MAX_PRIORITY",
    "TASK_MIN_PRIORITY",
    "BaseTaskBackend",
    "InvalidTask",
    "InvalidTaskBackend",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultStatus",
    "exception_path",
    "is_coroutine_task",
    "normalize_json",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]
