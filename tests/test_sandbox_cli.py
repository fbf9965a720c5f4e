"""The sandbox as a process: CLI flags, credential checks, ready line, signals, secrets."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.support.procs import ROOT, spawn, stop
from tests.support.sandbox import SandboxProcess, WebhookReceiver
from worker.cli import build_parser
from worker.sandbox import cli as sandbox_cli
from worker.webhook_crypto import open_delivery

VIDEO = "https://media.example.com/videos/cli.mp4"
FACE = "https://media.example.com/faces/ref.jpg"


def run_sandbox(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HEADSWAP_SANDBOX_API_KEY": ""}
    return subprocess.run([sys.executable, "-m", "worker.sandbox", "--port", "0", *args],
                          capture_output=True, text=True, timeout=30, cwd=ROOT, env=env)


def create_with_hook(sb: SandboxProcess, hook: str) -> str:
    body = {"video_url": VIDEO, "mappings": [{"obj_id": 0, "img_url": FACE}],
            "model_name": "akool-premium", "resolution": "720p", "webhookUrl": hook}
    response = sb.call("POST", "/v4/headswap/task/create", json=body).json()
    assert response["code"] == 1000, response
    return str(response["data"]["_id"])


def test_headswap_cli_registers_the_sandbox_subcommand() -> None:
    args = build_parser().parse_args(
        ["sandbox", "--port", "9999", "--api-key", "k", "--processing-time", "1,3",
         "--credits", "unlimited", "--no-webhooks", "--allowed-models", "a,b"])
    assert args.handler is sandbox_cli.run
    knobs = sandbox_cli.knobs_from_args(args)
    assert knobs.processing_time == (1.0, 3.0) and knobs.credits is None
    assert knobs.webhooks is False and knobs.allowed_models == ("a", "b")


def test_flags_set_startup_config_and_secrets_stay_hidden() -> None:
    api_key = "key-only-20-chars-xx"  # not an AES key length, and no client id/secret
    knobs = {"processing_time": [0.1, 0.2], "analysis_time": 0.05, "credits": 3,
             "allowed_models": ["akool-premium", "akool-lite"], "max_concurrent": 7,
             "require_analysis": False, "retry_after": 2.5}
    with SandboxProcess.start(api_key=api_key, client_id=None, client_secret=None,
                              knobs=knobs) as sb:
        config = sb.config()
        assert config["processing_time"] == [0.1, 0.2] and config["analysis_time"] == 0.05
        assert config["credits"] == 3 and config["max_concurrent"] == 7
        assert config["allowed_models"] == ["akool-premium", "akool-lite"]
        assert config["require_analysis"] is False and config["retry_after"] == 2.5
        create_with_hook(sb, "http://127.0.0.1:9/hook")  # no analysis needed
        deadline = time.monotonic() + 5
        while sb.stats()["webhooks_skipped"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sb.stats()["webhooks_skipped"] == 1
        assert sb.stats()["webhook_attempts"] == 0
        assert sb.stop() == 0
    output = sb.output()
    assert f"sandbox listening on {sb.url}\n" in output
    assert "webhooks will be skipped" in output
    assert api_key not in output


def test_api_key_serves_as_webhook_secret_when_it_fits() -> None:
    api_key = "APIKEY-AS-SECRET-0123456"  # 24 bytes
    with WebhookReceiver() as rec, SandboxProcess.start(
            api_key=api_key, client_secret=None,
            knobs={"processing_time": 0.1, "analysis_time": 0.05}) as sb:
        sb.analyze(VIDEO)
        task_id = create_with_hook(sb, rec.hook_url())
        [request] = rec.wait_for(1)
        assert sb.client_id
        payload = open_delivery(request["body"], sb.client_id, api_key, pad="strict")
        assert payload["_id"] == task_id and payload["status"] == 3


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_shuts_down_cleanly(sig: int) -> None:
    with SandboxProcess.start(knobs={"hang_ratio": 1.0, "hang_seconds": 30}) as sb:
        # a request stuck in a hang must not block shutdown
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.get(sb.api_url("/v4/headswap/task/detail"), headers=sb.headers(),
                         params={"_id": "0" * 24}, timeout=0.3)
        started = time.monotonic()
        assert sb.stop(sig) == 0
        assert time.monotonic() - started < 5


def test_port_zero_prints_the_bound_port(tmp_path: Path) -> None:
    log = tmp_path / "sandbox.log"
    proc = spawn([sys.executable, "-m", "worker.sandbox", "--port", "0", "--api-key", "k"],
                 env={"PYTHONUNBUFFERED": "1"}, log=log)
    try:
        deadline = time.monotonic() + 20
        match = None
        while match is None and time.monotonic() < deadline:
            match = re.search(r"sandbox listening on (http://127\.0\.0\.1:(\d+))\n",
                              log.read_text())
            time.sleep(0.05)
        assert match, log.read_text()
        assert int(match.group(2)) > 0
        health = requests.get(match.group(1) + "/_sandbox/health", timeout=5)
        assert health.json() == {"ok": True}
    finally:
        stop(proc)
    assert proc.returncode == 0


@pytest.mark.parametrize(("args", "message"), [
    (["--api-key", "k", "--client-id", "SHORT-SECRET-ID"], "--client-id must be exactly 16"),
    (["--api-key", "k", "--client-secret", "TWENTY-BYTE-SECRET-X"],
     "--client-secret must be 16, 24 or 32"),
    ([], "--api-key is required"),
    (["--api-key", "k", "--fail-ratio", "2"], "fail_ratio"),
    (["--api-key", "k", "--processing-time", "3,1"], "processing_time"),
])
def test_bad_startup_options_exit_2(args: list[str], message: str) -> None:
    result = run_sandbox(*args)
    assert result.returncode == 2, result
    assert message in result.stderr
    assert "SHORT-SECRET-ID" not in result.stderr + result.stdout
    assert "TWENTY-BYTE-SECRET-X" not in result.stderr + result.stdout
    assert "sandbox listening" not in result.stdout
