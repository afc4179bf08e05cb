from __future__ import annotations

from dpq.queue import AtLeastOnceQueue

from shop import tasks

queue = AtLeastOnceQueue(
    tasks={
        "send_confirmation": tasks.send_confirmation,
        "ship": tasks.ship,
    },
    notify_channel="shop",
)


def place_order(email):
    from shop.models import Order

    order = Order.objects.create(email=email)
    queue.enqueue("send_confirmation", {"order_id": order.pk})
    return order
