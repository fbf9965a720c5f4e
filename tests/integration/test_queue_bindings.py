"""Each queue has its own exchange and routing key: one publish lands in one Redis list.

Real redis-server (the session fixture), real kombu connections; no Celery worker.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from kombu import Connection, Exchange, Queue

from config.celery import OBSOLETE_BINDINGS, QUEUES, ROUTES, celery_config
from config.settings import load_settings

#: The queues of the deployment that left the bindings (before headswap.store existed).
OLD_QUEUES = ("headswap.submit", "headswap.poll", "headswap.notify")
SEP = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)  # kombu's Redis transport: one list per priority step


def lengths(client: redis.Redis) -> dict[str, int]:
    """Messages waiting per queue, over all of kombu's priority lists."""
    return {
        q: sum(int(client.llen(q if step == 0 else f"{q}{SEP}{step}")) for step in PRIORITY_STEPS)
        for q in QUEUES
    }


def only(queue: str, count: int = 1) -> dict[str, int]:
    return {q: (count if q == queue else 0) for q in QUEUES}


@pytest.fixture
def app(redis_server, redis_client) -> Iterator[Celery]:
    celery = Celery("test-bindings", set_as_current=False)
    settings = load_settings({"HEADSWAP_REDIS_URL": redis_server.url})
    celery.config_from_object(celery_config(settings))
    with celery.connection_for_write() as conn:  # what a worker declares when it starts
        for queue in celery.amqp.queues.values():
            queue.bind(conn.default_channel).declare()
    yield celery
    celery.close()


@pytest.mark.parametrize("queue", QUEUES)
def test_one_publish_to_a_queue_exchange_lands_in_that_queue_only(app, redis_client, queue):
    with app.connection_for_write() as conn:
        conn.Producer(serializer="json").publish(
            {"hello": queue}, exchange=Exchange(queue, type="direct"), routing_key=queue)
    assert lengths(redis_client) == only(queue)


@pytest.mark.parametrize("task_name", sorted(ROUTES))
def test_send_task_by_its_route_lands_in_its_queue_only(app, redis_client, task_name):
    app.send_task(task_name, kwargs={"job_id": "j1"})
    assert lengths(redis_client) == only(ROUTES[task_name]["queue"])


def test_send_task_naming_the_queue_lands_in_that_queue_only(app, redis_client):
    """As worker.producer sends: ``send_task(..., queue=SUBMIT_QUEUE)``."""
    app.send_task("headswap.submit", kwargs={"job_id": "j1"}, queue="headswap.submit")
    assert lengths(redis_client) == only("headswap.submit")


def test_a_producer_in_another_language_publishing_to_the_queue_name_still_works(
        app, redis_server, redis_client):
    """Routing key = queue name on the default exchange, as a non-Celery client sends."""
    with Connection(redis_server.url) as conn:
        conn.Producer(serializer="json").publish(
            {"task": "headswap.submit"}, exchange="", routing_key="headswap.submit")
    assert lengths(redis_client) == only("headswap.submit")


def test_a_plain_celery_client_sending_to_the_queue_by_name_lands_once(
        app, redis_server, redis_client):
    """The README's recipe: a bare Celery app, ``queue="headswap.submit"``."""
    bare = Celery(broker=redis_server.url, set_as_current=False)
    bare.send_task("headswap.submit", kwargs={"job_id": "j1"}, queue="headswap.submit")
    bare.close()
    assert lengths(redis_client) == only("headswap.submit")


def test_bindings_left_by_the_old_configuration_are_named_for_removal(app, redis_client):
    """Given the bindings the old config made (every queue on exchange headswap.submit),
    when the pairs in OBSOLETE_BINDINGS are removed, one publish lands once."""
    with app.connection_for_write() as conn:
        for name in OLD_QUEUES:  # as the old deployment left them
            Queue(name, Exchange("headswap.submit", type="direct"),
                  routing_key="headswap.submit").bind(conn.default_channel).declare()
        for key, member in OBSOLETE_BINDINGS:
            redis_client.srem(key, member)
        for queue in app.amqp.queues.values():  # the new deployment starts
            queue.bind(conn.default_channel).declare()
        conn.Producer(serializer="json").publish(
            {}, exchange="headswap.submit", routing_key="headswap.submit")
    assert lengths(redis_client) == only("headswap.submit")


def test_a_starting_worker_removes_the_bindings_the_old_configuration_left(redis_server,
                                                                            sandbox):
    """`headswap worker` itself cleans up at start, so a rollout needs no manual step."""
    from tests.support.stack import running_stack

    with running_stack(redis_server.url, sandbox, workers=0, beats=0) as stack:
        old = Celery("old-deployment", set_as_current=False)
        old.config_from_object(celery_config(load_settings(stack.env)))
        with old.connection_for_write() as conn:
            for name in OLD_QUEUES:  # as the old deployment left them
                Queue(name, Exchange("headswap.submit", type="direct"),
                      routing_key="headswap.submit").bind(conn.default_channel).declare()
        planted = [(k, m) for k, m in OBSOLETE_BINDINGS if stack.redis.sismember(k, m)]
        assert planted  # the test has material
        stack.start_worker()
        stack.wait_ready()
        assert not [(k, m) for k, m in OBSOLETE_BINDINGS if stack.redis.sismember(k, m)]
        assert "obsolete queue bindings removed" in stack.logs()


@pytest.mark.parametrize("task_name", sorted(ROUTES))
def test_a_redis_that_forgot_its_bindings_still_gets_every_send(app, redis_client, task_name):
    """Redis restarted empty, evicted or flushed: the bindings kombu keeps there are gone,
    while a connected sender has them cached as declared. Its next send still arrives."""
    app.send_task(task_name, kwargs={"job_id": "before"})  # the sender's connection is warm
    redis_client.flushdb()
    app.send_task(task_name, kwargs={"job_id": "after"})
    assert lengths(redis_client) == only(ROUTES[task_name]["queue"])
