"""The webhook receiver's metrics with several gunicorn processes: ``headswap webhook`` as
deployed, two processes (``HEADSWAP_WEBHOOK_PROCESSES=2``), real redis-server; every
delivery, whichever process took it, is counted in the one scrape of the metrics port
(prometheus-client's multiprocess mode, served by the gunicorn master), and a process that
dies takes none of its counts with it."""

from __future__ import annotations

import json
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict

from tests.integration.test_commands import HEADSWAP, cli_env
from tests.support.procs import free_port, spawn, stop, wait_until
from tests.support.stack import fresh_db_url

pytestmark = pytest.mark.integration

REFUSED = 'headswap_webhook_deliveries_total{outcome="refused"}'


def _scrape(port: int) -> str:
    return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def _value(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{sample} not in the scrape")


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/metrics", timeout=1).ok
    except requests.RequestException:
        return False


def _refused_by_pid(folder: Path) -> dict[int, float]:
    """What each process wrote to its own counter file: pid -> refused deliveries."""
    out: dict[int, float] = {}
    for path in folder.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path)):
            _, name, labels, _ = json.loads(key)
            if name == "headswap_webhook_deliveries_total" and labels.get("outcome") == "refused":
                out[pid] = out.get(pid, 0.0) + value
    return out


def _post_garbage(url: str, n: int) -> None:
    """``n`` invalid deliveries at once, each on a connection of its own (so the kernel
    hands them to whichever process accepts first)."""

    def one(_: int) -> int:
        with requests.Session() as session:
            return session.post(url, data=b"{", timeout=10,
                                headers={"Connection": "close"}).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        assert set(pool.map(one, range(n))) == {400}


def test_deliveries_across_two_receiver_processes_are_all_counted_in_one_scrape(
        redis_server, sandbox, tmp_path):
    port, metrics_port = free_port(), free_port()
    shared = tmp_path / "prometheus"
    env = cli_env(fresh_db_url(redis_server.url), sandbox,
                  HEADSWAP_METRICS_PORT=str(metrics_port), HEADSWAP_WEBHOOK_PROCESSES="2",
                  HEADSWAP_WEBHOOK_THREADS="4", PROMETHEUS_MULTIPROC_DIR=str(shared))
    proc = spawn([HEADSWAP, "webhook", "--host", "127.0.0.1", "--port", str(port)], env=env,
                 log=tmp_path / "webhook.log")
    url = f"http://127.0.0.1:{port}/webhooks/akool"
    try:
        master = psutil.Process(proc.pid)
        wait_until(lambda: _answers(metrics_port) and len(master.children()) == 2, 30,
                   what="receiver with two processes")
        workers = {child.pid for child in master.children()}
        # Given deliveries sent until both processes have taken some
        sent = 0
        while sent < 400 and len(set(_refused_by_pid(shared)) & workers) < 2:
            _post_garbage(url, 20)
            sent += 20
        by_pid = _refused_by_pid(shared)
        assert len(set(by_pid) & workers) == 2, f"one process took all {sent}: {by_pid}"
        # When Prometheus scrapes the one metrics port
        text = _scrape(metrics_port)
        # Then it counts every delivery, whichever process answered it
        assert _value(text, REFUSED) == sent
        assert 'headswap_build_info{' in text and 'component="webhook"' in text
        assert _value(text, 'headswap_jobs{state="queued"}') == 0  # the global gauges too

        # And a process that dies (gunicorn starts another) keeps its counts in the sum
        victim = max(workers, key=lambda pid: by_pid.get(pid, 0))
        psutil.Process(victim).send_signal(signal.SIGKILL)
        wait_until(lambda: len(set(c.pid for c in master.children()) - {victim}) == 2, 30,
                   what="gunicorn to replace the killed process")
        _post_garbage(url, 4)
        assert _value(_scrape(metrics_port), REFUSED) == sent + 4
    finally:
        stop(proc)
    assert proc.returncode is not None
