"""Backoff policies and the retry decision: pure functions, no database."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from dpq import exceptions

# A backoff maps the number of failed attempts so far (1 after the first failure) to the
# seconds to wait before the next one.
Backoff = Callable[[int], float]


@dataclass(frozen=True)
class ExponentialBackoff:
    """``base * factor ** (attempts - 1)`` seconds, capped at ``maximum``, with +/- ``jitter``.

    The jitter (a fraction of the delay) spreads out the retries of jobs that failed together,
    so that an outage they all hit does not come back as a thundering herd.
    """

    base: float = 2.0
    factor: float = 2.0
    maximum: float = 3600.0
    jitter: float = 0.1

    def __call__(self, attempts: int, rng: random.Random | None = None) -> float:
        delay = min(self.maximum, self.base * self.factor ** max(0, attempts - 1))
        spread = delay * self.jitter
        return max(0.0, delay + (rng or random).uniform(-spread, spread))


@dataclass(frozen=True)
class FixedBackoff:
    """The same delay before every retry."""

    seconds: float = 10.0

    def __call__(self, attempts: int) -> float:
        return self.seconds


@dataclass(frozen=True)
class RetryPolicy:
    """How often a job whose task raises is tried, and how long to wait between tries.

    ``max_attempts`` counts every run, the first one included: 1 means never retry.
    """

    max_attempts: int = 3
    backoff: Backoff = field(default_factory=ExponentialBackoff)

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(
            self.max_attempts, int
        ):
            raise exceptions.QueueConfigurationError(
                f"max_attempts must be an integer >= 1, got {self.max_attempts!r}"
            )
        if self.max_attempts < 1:
            raise exceptions.QueueConfigurationError(
                f"max_attempts must be >= 1 (1 means no retry), got {self.max_attempts}"
            )
        if not callable(self.backoff):
            raise exceptions.QueueConfigurationError(
                f"backoff must be a callable taking the attempt count, got {self.backoff!r}"
            )


@dataclass(frozen=True)
class RetryDecision:
    give_up: bool
    retry_in: float


def decide(policy: RetryPolicy, attempts: int) -> RetryDecision:
    """Decide what happens to a job that has now failed ``attempts`` times."""
    if attempts >= policy.max_attempts:
        return RetryDecision(give_up=True, retry_in=0.0)
    return RetryDecision(give_up=False, retry_in=float(policy.backoff(attempts)))
