"""One Akool client shared by many threads (the poller's pool: ``HEADSWAP_POLL_CONCURRENCY``
threads on one ``requests.Session``), against the sandbox over real HTTP with latency:
every answer reaches the thread that asked, the calls overlap, the pool sized by the
settings never throws a connection away, and a revoked token is fetched again once."""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from config.settings import load_settings
from tests.integration.test_akool_client import VIDEO, analysed, client_for
from worker.akool import AkoolClient
from worker.akool_types import CreateTaskRequest, Mapping

pytestmark = pytest.mark.integration

THREADS = 50
LATENCY_S = 0.3


def tasks(client, count):
    """``count`` tasks at the sandbox (each with its own face: no duplicate)."""
    analysed(client)
    return [client.create_task(CreateTaskRequest(VIDEO, (
        Mapping(0, f"https://cdn.example.com/face-{i}.jpg"),))).remote_id for i in range(count)]


def test_many_threads_share_one_client_each_getting_its_own_answer(sandbox, caplog):
    settings = load_settings({"HEADSWAP_AKOOL_BASE_URL": sandbox.url,
                              "HEADSWAP_AKOOL_API_KEY": sandbox.api_key})
    client = AkoolClient.from_settings(settings)
    assert settings.akool_pool_size == settings.http_pool_size + settings.poll_concurrency
    ids = tasks(client, THREADS)
    sandbox.config(processing_time=3600, latency=LATENCY_S)
    caplog.set_level(logging.WARNING, logger="urllib3")
    try:
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(client.task_detail, ids))  # warm: one connection per thread
            started = time.monotonic()
            answers = list(pool.map(client.task_detail, ids * 3))
            took = time.monotonic() - started
    finally:
        sandbox.config(latency=0.0)
        client.close()
    # Each thread got the answer to its own question.
    assert [a.remote_id for a in answers] == ids * 3
    # 150 calls of 0.3 s on 50 threads: three rounds, not 150 calls one after another.
    assert took < 10 * LATENCY_S, took
    # The pool held a connection for every thread: urllib3 never had to discard one.
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def test_a_revoked_token_is_fetched_again_once_for_all_threads(sandbox):
    client = client_for(sandbox, api_key="", client_id=sandbox.client_id,
                        client_secret=sandbox.client_secret, pool_size=THREADS)
    ids = tasks(client, 1)
    assert sandbox.stats()["token_calls"] == 1
    sandbox.revoke_tokens()
    sandbox.config(latency=LATENCY_S)  # every thread sends with the revoked token first
    barrier = threading.Barrier(20)

    def ask(_: int) -> str:
        barrier.wait()
        return client.task_detail(ids[0]).remote_id

    try:
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(ask, range(20)))
    finally:
        sandbox.config(latency=0.0)
        client.close()
    assert answers == ids * 20
    # One refresh for the twenty threads that met the revoked token (one each, before).
    assert sandbox.stats()["token_calls"] == 2
