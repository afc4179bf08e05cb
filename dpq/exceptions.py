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


class CrashLimitExceeded(DpqError):
    """The worker process died too many times while running a job."""
