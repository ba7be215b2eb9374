"""The Functions host's side of the run-request queue, against real Azurite.

`receive` reads a message as the host's queue trigger does (base64 text, decoded to
the bytes the function gets, with its dequeue count); `deliver` hands it to the
worker function; `release` makes a received message visible again, as the host does
when the function raised (so the next receive counts one more delivery).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses

import azure.functions.queue
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueMessage

from shared.app import run_queue


@dataclasses.dataclass
class Delivery:
    raw: QueueMessage
    message: azure.functions.queue.QueueMessage


def client(connection_string: str, name: str = run_queue.QUEUE_NAME) -> QueueClient:
    return QueueClient.from_connection_string(connection_string, name)


def receive(connection_string: str, name: str = run_queue.QUEUE_NAME) -> Delivery | None:
    queue = client(connection_string, name)
    try:
        raw = queue.receive_message(visibility_timeout=600)
    except ResourceNotFoundError:  # the queue does not exist yet: nothing was queued
        return None
    if raw is None:
        return None
    body = base64.b64decode(raw.content)  # the host's default messageEncoding
    # The class the host hands a queue-triggered function (it has the dequeue count).
    return Delivery(raw, azure.functions.queue.QueueMessage(
        id=raw.id, body=body, dequeue_count=raw.dequeue_count))


def release(connection_string: str, delivery: Delivery,
            name: str = run_queue.QUEUE_NAME) -> None:
    client(connection_string, name).update_message(
        delivery.raw.id, delivery.raw.pop_receipt, visibility_timeout=0)


def complete(connection_string: str, delivery: Delivery,
             name: str = run_queue.QUEUE_NAME) -> None:
    client(connection_string, name).delete_message(delivery.raw.id, delivery.raw.pop_receipt)


def put(connection_string: str, body: bytes, name: str) -> None:
    """A message as the host writes it (base64), e.g. onto the poison queue."""
    queue = client(connection_string, name)
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()
    queue.send_message(base64.b64encode(body).decode())


def count(connection_string: str, name: str = run_queue.QUEUE_NAME) -> int:
    """Messages in the queue, visible or not."""
    try:
        props = client(connection_string, name).get_queue_properties()
    except ResourceNotFoundError:
        return 0
    return int(props.approximate_message_count or 0)
