"""Shared fixtures: a private redis-server per session, flushed per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from worker.devstack.redis_server import LocalRedis, start_redis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedis]:
    server = start_redis()
    yield server
    server.stop()


@pytest.fixture
def redis_client(redis_server: LocalRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushdb()  # the stacks of this session use other databases
    yield client
    client.close()
