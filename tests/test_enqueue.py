"""Enqueueing: what is written, what is refused (and then nothing is written), and NOTIFY."""

from __future__ import annotations

import datetime
import threading

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dpq import exceptions
from dpq.models import Job
from dpq.queue import AtLeastOnceQueue
from tests import tasks

HOUR = datetime.timedelta(hours=1)


# --- What is written ----------------------------------------------------------------------


@pytest.mark.django_db
def test_enqueue_writes_one_row_with_the_given_fields(queue):
    due = timezone.now() + HOUR

    job = queue.enqueue("record", {"note": "a"}, execute_at=due, priority=7)

    row = Job.objects.get()
    assert row.id == job.id
    assert (row.task, row.args, row.priority, row.queue) == (
        "record",
        {"note": "a"},
        7,
        "default",
    )
    assert row.execute_at == due
    assert (row.attempts, row.last_error, row.failed_at) == (0, "", None)


@pytest.mark.django_db
def test_enqueue_defaults_to_empty_args_priority_zero_and_due_now(queue):
    job = queue.enqueue("noop")

    row = Job.objects.get(id=job.id)
    assert (row.args, row.priority) == ({}, 0)
    assert row.execute_at <= timezone.now()


@pytest.mark.django_db
def test_enqueue_writes_the_queue_name(make_job):
    other = AtLeastOnceQueue(tasks=tasks.TASKS, name="mail")

    make_job(queue=other)

    assert list(Job.objects.values_list("queue", flat=True)) == ["mail"]


@pytest.mark.django_db
def test_enqueue_keeps_json_types_of_args(queue):
    args = {"n": 1, "f": 1.5, "s": "é", "l": [1, None, True], "d": {"x": False}}

    queue.enqueue("noop", args)

    assert Job.objects.get().args == args


@pytest.mark.django_db
def test_enqueue_in_a_transaction_that_rolls_back_leaves_no_job(queue):
    with pytest.raises(RuntimeError), transaction.atomic():
        queue.enqueue("noop")
        raise RuntimeError("the view failed after enqueueing")

    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_enqueue_many_writes_all_jobs_in_one_statement(queue):
    items = [("record", {"note": str(n)}) for n in range(50)]

    with CaptureQueriesContext(connection) as captured:
        ids = queue.enqueue_many(items)

    inserts = [q["sql"] for q in captured if "INSERT" in q["sql"].upper()]
    assert len(inserts) == 1
    assert len(ids) == 50
    notes = dict(Job.objects.values_list("id", "args__note"))
    assert [notes[i] for i in ids] == [str(n) for n in range(50)]


@pytest.mark.django_db
def test_enqueue_many_sends_one_notify(queue):
    with CaptureQueriesContext(connection) as captured:
        queue.enqueue_many([("noop", {})] * 20)

    notifies = [q["sql"] for q in captured if "pg_notify" in q["sql"]]
    assert len(notifies) == 1
    assert Job.objects.count() == 20


@pytest.mark.django_db
def test_enqueue_many_accepts_dicts_with_priority_and_execute_at(queue):
    due = timezone.now() + HOUR

    ids = queue.enqueue_many(
        [
            {"task": "noop", "priority": 3, "execute_at": due},
            {"task": "record", "args": {"note": "b"}},
        ]
    )

    first, second = (Job.objects.get(id=i) for i in ids)
    assert (first.priority, first.execute_at, first.args) == (3, due, {})
    assert (second.task, second.priority, second.args) == ("record", 0, {"note": "b"})


@pytest.mark.django_db
def test_enqueue_many_of_nothing_writes_nothing(queue):
    with CaptureQueriesContext(connection) as captured:
        assert queue.enqueue_many([]) == []

    assert len(captured) == 0


# --- What is refused, with nothing written ------------------------------------------------


@pytest.mark.django_db
def test_enqueue_refuses_an_unknown_task_and_lists_the_known_ones(queue):
    with pytest.raises(exceptions.TaskNotRegisteredError) as caught:
        queue.enqueue("send_mail", {})

    message = str(caught.value)
    assert "'send_mail'" in message
    assert "known: fail, kill_process, noop, record, record_then_fail" in message
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_enqueue_refuses_args_json_cannot_encode_and_names_the_type(queue):
    with pytest.raises(exceptions.InvalidArgsError, match="datetime") as caught:
        queue.enqueue("noop", {"when": timezone.now()})

    assert "JSON" in str(caught.value)
    assert Job.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_enqueue_refuses_non_finite_floats(queue, value):
    with pytest.raises(exceptions.InvalidArgsError, match="JSON"):
        queue.enqueue("noop", {"x": value})

    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_enqueue_refuses_a_nul_character_in_args(queue):
    with pytest.raises(exceptions.InvalidArgsError, match="NUL"):
        queue.enqueue("noop", {"x": "a\x00b"})

    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_enqueue_refuses_a_naive_execute_at_when_use_tz_is_on(queue, settings):
    settings.USE_TZ = True

    with pytest.raises(exceptions.InvalidJobError, match="no time zone while USE_TZ"):
        queue.enqueue("noop", {}, execute_at=datetime.datetime(2030, 1, 1, 12))

    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_enqueue_refuses_an_execute_at_that_is_not_a_datetime(queue):
    with pytest.raises(exceptions.InvalidJobError, match="must be a datetime"):
        queue.enqueue("noop", {}, execute_at=datetime.date(2030, 1, 1))

    assert Job.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("priority", "type_name"), [("5", "str"), (1.5, "float"), (True, "bool")]
)
def test_enqueue_refuses_a_priority_that_is_not_an_integer(queue, priority, type_name):
    with pytest.raises(exceptions.InvalidJobError) as caught:
        queue.enqueue("noop", {}, priority=priority)

    assert f"priority must be an integer, got {type_name}" in str(caught.value)
    assert Job.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("priority", [2**31, -(2**31) - 1])
def test_enqueue_refuses_a_priority_out_of_range(queue, priority):
    with pytest.raises(exceptions.InvalidJobError, match="out of range"):
        queue.enqueue("noop", {}, priority=priority)

    assert Job.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("priority", [2**31 - 1, -(2**31)])
def test_enqueue_accepts_the_priority_range_limits(queue, priority):
    queue.enqueue("noop", {}, priority=priority)

    assert Job.objects.get().priority == priority


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("bad_item", "error"),
    [
        (("noop", {"x": object()}), exceptions.InvalidArgsError),
        (("send_mail", {}), exceptions.TaskNotRegisteredError),
        ({"task": "noop", "priority": "high"}, exceptions.InvalidJobError),
        ({"task": "noop", "colour": "red"}, exceptions.InvalidJobError),
        ("noop", exceptions.InvalidJobError),
    ],
)
def test_enqueue_many_with_one_bad_item_writes_none(queue, bad_item, error):
    items = [("noop", {}), ("record", {"note": "x"}), bad_item, ("noop", {})]

    with pytest.raises(error):
        queue.enqueue_many(items)

    assert Job.objects.count() == 0


# --- Notify channels ----------------------------------------------------------------------


def test_queue_refuses_an_empty_notify_channel():
    with pytest.raises(exceptions.InvalidChannelError, match="must not be empty"):
        AtLeastOnceQueue(tasks=tasks.TASKS, notify_channel="")


@pytest.mark.parametrize("channel", ["c" * 64, "é" * 32])
def test_queue_refuses_a_notify_channel_over_63_bytes(channel):
    with pytest.raises(exceptions.InvalidChannelError, match="64 bytes long"):
        AtLeastOnceQueue(tasks=tasks.TASKS, notify_channel=channel)


def test_queue_refuses_a_notify_channel_that_is_not_a_string():
    with pytest.raises(exceptions.InvalidChannelError, match="must be a string"):
        AtLeastOnceQueue(tasks=tasks.TASKS, notify_channel=5)


@pytest.fixture
def listening():
    """Build a queue on a channel and LISTEN with this thread's connection."""
    queues = []

    def listen(channel: str, **options) -> AtLeastOnceQueue:
        q = AtLeastOnceQueue(tasks=tasks.TASKS, notify_channel=channel, **options)
        q.listen()
        queues.append(q)
        return q

    yield listen
    for q in queues:
        q.close()
    connection.close()


def enqueue_elsewhere(q: AtLeastOnceQueue, task: str = "noop") -> None:
    """Enqueue (and commit) from another thread's connection."""

    def run():
        try:
            q.enqueue(task)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)


@pytest.mark.django_db(transaction=True)
def test_wait_returns_the_notification_of_an_enqueue_from_another_connection(
    listening,
):
    q = listening("dpq-tests")

    enqueue_elsewhere(q)

    notifies = q.wait(timeout=10)
    assert [n.channel for n in notifies] == ["dpq-tests"]
    assert Job.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_wait_works_on_a_channel_of_63_bytes(listening):
    q = listening("c" * 63)

    enqueue_elsewhere(q)

    assert [n.channel for n in q.wait(timeout=10)] == ["c" * 63]


@pytest.mark.django_db(transaction=True)
def test_enqueue_sends_no_notification_when_notify_on_enqueue_is_off(listening):
    quiet = listening("dpq-tests", notify_on_enqueue=False)
    marker = listening("dpq-marker")

    enqueue_elsewhere(quiet)
    # Notifications of one sender arrive in commit order: once the marker sent after the
    # enqueue is here, a notification of the enqueue would be here too.
    enqueue_elsewhere(marker)

    assert [n.channel for n in marker.wait(timeout=10)] == ["dpq-marker"]
    assert quiet.filter_notifies() == []
    assert Job.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_wait_does_not_return_notifications_of_another_channel(listening):
    mine = listening("dpq-tests")
    other = listening("dpq-other")

    enqueue_elsewhere(other)
    enqueue_elsewhere(mine)

    assert [n.channel for n in mine.wait(timeout=10)] == ["dpq-tests"]
    assert [n.channel for n in other.wait(timeout=10)] == ["dpq-other"]


@pytest.mark.django_db(transaction=True)
def test_enqueue_notifies_only_when_the_transaction_commits(listening):
    q = listening("dpq-tests")
    marker = listening("dpq-marker")

    def run():
        try:
            with pytest.raises(RuntimeError), transaction.atomic():
                q.enqueue("noop")
                raise RuntimeError("rolled back")
            marker.enqueue("noop")
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(30)

    assert [n.channel for n in marker.wait(timeout=10)] == ["dpq-marker"]
    assert q.filter_notifies() == []
    assert Job.objects.count() == 1


@pytest.fixture
def canary():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE canary (id int)")
    yield
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS canary")


@pytest.mark.django_db(transaction=True)
def test_a_channel_with_quotes_and_sql_is_only_a_name(canary, listening):
    channel = 'my-queue"; DROP TABLE canary; --'
    q = listening(channel)

    q.enqueue("noop")

    assert [n.channel for n in q.wait(timeout=10)] == [channel]
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('canary') IS NOT NULL")
        assert cursor.fetchone() == (True,)
    assert Job.objects.count() == 1
