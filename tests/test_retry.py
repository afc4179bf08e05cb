"""Backoff policies and the retry decision: pure functions, no database."""

from __future__ import annotations

import random

import pytest

from dpq import exceptions
from dpq.retry import ExponentialBackoff, FixedBackoff, RetryPolicy, decide


def test_exponential_backoff_doubles_from_its_base():
    backoff = ExponentialBackoff(base=2, factor=2, jitter=0)

    assert [backoff(n) for n in range(1, 6)] == [2, 4, 8, 16, 32]


def test_exponential_backoff_is_capped_at_its_maximum():
    backoff = ExponentialBackoff(base=2, factor=2, maximum=100, jitter=0)

    assert [backoff(n) for n in (6, 7, 50, 5000)] == [64, 100, 100, 100]


def test_exponential_backoff_jitter_stays_within_its_fraction():
    backoff = ExponentialBackoff(base=10, factor=1, jitter=0.1)
    rng = random.Random(7)

    delays = [backoff(1, rng) for _ in range(1000)]

    assert all(9 <= d <= 11 for d in delays)
    assert min(delays) < 9.5 < 10.5 < max(delays)


def test_exponential_backoff_jitter_applies_to_the_capped_delay():
    backoff = ExponentialBackoff(base=2, maximum=60, jitter=0.5)
    rng = random.Random(3)

    delays = [backoff(100, rng) for _ in range(200)]

    assert all(30 <= d <= 90 for d in delays)


def test_fixed_backoff_waits_the_same_every_time():
    assert [FixedBackoff(5)(n) for n in (1, 2, 10)] == [5, 5, 5]


def test_decide_retries_before_max_attempts_with_the_backoff_delay():
    policy = RetryPolicy(max_attempts=3, backoff=FixedBackoff(42))

    assert [
        (d.give_up, d.retry_in) for d in (decide(policy, 1), decide(policy, 2))
    ] == [
        (False, 42.0),
        (False, 42.0),
    ]


def test_decide_gives_up_at_max_attempts():
    policy = RetryPolicy(max_attempts=3)

    assert decide(policy, 3).give_up
    assert decide(policy, 4).give_up


def test_max_attempts_of_one_never_retries():
    assert decide(RetryPolicy(max_attempts=1), 1).give_up


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "max_attempts must be >= 1 (1 means no retry), got 0"),
        (-2, "max_attempts must be >= 1 (1 means no retry), got -2"),
        ("3", "max_attempts must be an integer >= 1, got '3'"),
        (2.5, "max_attempts must be an integer >= 1, got 2.5"),
        (True, "max_attempts must be an integer >= 1, got True"),
    ],
)
def test_retry_policy_refuses_a_bad_max_attempts(value, message):
    with pytest.raises(exceptions.QueueConfigurationError) as caught:
        RetryPolicy(max_attempts=value)

    assert str(caught.value) == message


def test_retry_policy_refuses_a_backoff_that_is_not_callable():
    with pytest.raises(
        exceptions.QueueConfigurationError, match="backoff must be a callable"
    ):
        RetryPolicy(backoff=30)
