"""Our task messages in Celery's default queue: which they are, and where they belong
(pure functions over an entry's bytes).

A producer's own Celery app that sends ``headswap.submit`` without ``queue=`` publishes
to its ``task_default_queue``, ``celery``: a list no headswap worker consumes. The sweep
(:func:`worker.sweeper.reroute_misrouted`) moves such entries onto the queue the task is
routed to (``config.celery.ROUTES``), re-addressed so that kombu's restore of an unacked
message returns it there and not to ``celery``.
"""

from __future__ import annotations

import json
from typing import Any, Final

from config.celery import ROUTES, SUBMIT_QUEUE

#: Celery's ``task_default_queue``, where a send without ``queue=`` lands.
DEFAULT_QUEUE: Final = "celery"
#: kombu's Redis transport keeps priorities 3, 6 and 9 in lists of their own
#: (``<queue>\x06\x16<priority>``); 0 is the plain list.
PRIORITY_SEP: Final = "\x06\x16"
PRIORITY_SUFFIXES: Final = ("", *(f"{PRIORITY_SEP}{p}" for p in (3, 6, 9)))
#: Metric label for a ``headswap.*`` name no route knows (label values stay bounded).
OTHER_TASK: Final = "other"


def lists_of(queue: str) -> list[str]:
    """The Redis lists of one kombu queue: the plain one and its priority lists."""
    return [queue + suffix for suffix in PRIORITY_SUFFIXES]


def task_of(raw: bytes) -> str | None:
    """The ``headswap.*`` task an entry carries (``headers.task``), else None: not a kombu
    envelope, not a Celery protocol-2 message, or another service's task."""
    try:
        envelope = json.loads(raw)
    except ValueError:  # not UTF-8, not JSON
        return None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("headers"), dict):
        return None
    task = envelope["headers"].get("task")
    if isinstance(task, str) and task.startswith("headswap."):
        return task
    return None


def message_id(raw: bytes) -> str:
    """The Celery task id of an entry (``headers.id``), '' when it has none."""
    try:
        headers = json.loads(raw).get("headers") or {}
    except (ValueError, AttributeError):
        return ""
    value = headers.get("id") if isinstance(headers, dict) else None
    return value if isinstance(value, str) else ""


def home_queue(task: str) -> str:
    """The queue ``task`` is routed to; an unknown ``headswap.*`` name goes to the submit
    queue, where the worker keeps it in dead-messages as ``unknown_task`` (seen, kept)."""
    return ROUTES.get(task, {"queue": SUBMIT_QUEUE})["queue"]


def target_list(source: str, queue: str) -> str:
    """The list of ``queue`` at the priority ``source`` (a list of the default queue) has."""
    return queue + source[len(DEFAULT_QUEUE):]


def readdressed(raw: bytes, queue: str) -> bytes:
    """The same envelope, its ``delivery_info`` naming ``queue`` (the anonymous exchange,
    the queue's name as routing key: how kombu restores an unacked message to a list)."""
    envelope: dict[str, Any] = json.loads(raw)
    properties = envelope.get("properties")
    if not isinstance(properties, dict):
        return raw  # kombu cannot take it anyway: the worker keeps it as bad_envelope
    properties["delivery_info"] = {"exchange": "", "routing_key": queue}
    return json.dumps(envelope).encode("utf-8")


def task_label(task: str) -> str:
    """``task`` as a metric label: a routed name, else :data:`OTHER_TASK`."""
    return task if task in ROUTES else OTHER_TASK
