from __future__ import annotations


class DpqError(Exception):
    """Base class of every error dpq raises on purpose."""


class TaskNotRegisteredError(DpqError, KeyError):
    """A task name that the queue's ``tasks`` mapping does not hold."""

    def __str__(self) -> str:
        # KeyError would repr() the message; show it as written.
        return str(self.args[0]) if self.args else ""


class InvalidArgsError(DpqError, TypeError):
    """Job args that cannot be stored as JSON."""


class InvalidJobError(DpqError, ValueError):
    """An enqueue argument other than args is wrong (execute_at, priority, queue name)."""


class InvalidChannelError(DpqError, ValueError):
    """A notify channel that PostgreSQL cannot LISTEN on."""


class QueueConfigurationError(DpqError, ValueError):
    """A Queue was built with settings that cannot work."""


class JobNotFoundError(DpqError, LookupError):
    """A job id that names no job (it ran and succeeded, or it was deleted)."""


class JobRunningError(DpqError):
    """A job a worker holds (it is running), so it cannot be changed now."""


class JobNotEditableError(DpqError, ValueError):
    """A job that an edit does not apply to (a queued job), or an edit that is wrong."""


class CrashLimitExceeded(DpqError):
    """The worker process died too many times while running a job."""
