"""The sandbox (Akool emulator) as its own process (``headswap sandbox``), and a small
client for its control API (``/_sandbox/config``, ``/_sandbox/stats``...).

Usage::

    with SandboxProcess.start(knobs={"processing_time": 0.5}) as sb:
        sb.config(fail_ratio=1.0)
        requests.post(sb.api_url("/v4/headswap/analyze"), headers=sb.headers(), json=...)
        assert sb.stats()["duplicate_creates"] == 0

Or ``with running_sandbox(...) as sb``; a pytest fixture body is
``yield from sandbox_fixture(...)``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from worker.cli import headswap_command
from worker.devstack.procs import Proc, free_port, spawn, stop

#: Credentials of a local emulator only (never an Akool account).
DEFAULT_API_KEY = "sandbox-test-api-key"
DEFAULT_CLIENT_ID = "TESTCLIENTID0001"  # 16 bytes: the webhook AES IV
DEFAULT_CLIENT_SECRET = "TESTSECRETKEY0123456789A"  # noqa: S105 (24 bytes: webhook AES-192 key)
API_ROOT = "/api/open"
FAST_KNOBS: dict[str, object] = {"processing_time": 0.6, "analysis_time": 0.1,
                                 "webhook_backoff": 0.1}
"""Knobs that keep lifecycles short enough for tests."""


class SandboxError(RuntimeError):
    """The sandbox did not start, or a control call failed."""


def knob_flags(knobs: Mapping[str, object]) -> list[str]:
    """CLI flags for knobs: ``{"processing_time": [1, 3]}`` -> ``["--processing-time", "1,3"]``."""
    flags: list[str] = []
    for name, value in knobs.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + name.replace("_", "-"))
        elif value is None:
            flags += [flag, "none"]
        elif isinstance(value, list | tuple):
            flags += [flag, ",".join(str(v) for v in value)]
        else:
            flags += [flag, str(value)]
    return flags


class SandboxProcess:
    """A running ``headswap sandbox`` process and a small client for its control API."""

    def __init__(self, proc: Proc, url: str, api_key: str,
                 client_id: str | None, client_secret: str | None, log_path: Path) -> None:
        self.proc = proc
        self.url = url
        self.api_key = api_key
        self.client_id = client_id
        self.client_secret = client_secret
        self.log_path = log_path
        self.session = requests.Session()
        self.owns_log = False
        self._final_output: str | None = None

    # -- starting and stopping -------------------------------------------------------------

    @classmethod
    def start(cls, *, port: int | None = None, api_key: str = DEFAULT_API_KEY,
              client_id: str | None = DEFAULT_CLIENT_ID,
              client_secret: str | None = DEFAULT_CLIENT_SECRET,
              knobs: Mapping[str, object] | None = None, seed: int | None = None,
              extra_args: Sequence[str] = (), log_path: Path | None = None,
              timeout: float = 20.0) -> SandboxProcess:
        """Spawn the sandbox and wait until ``/_sandbox/health`` answers.

        ``client_id``/``client_secret`` of None leave them unset (no webhooks unless the API
        key is a valid AES key). Knobs are passed as CLI flags.
        """
        port = port or free_port()
        args = headswap_command("sandbox", "--host", "127.0.0.1", "--port", str(port),
                                "--api-key", api_key)
        if client_id is not None:
            args += ["--client-id", client_id]
        if client_secret is not None:
            args += ["--client-secret", client_secret]
        if seed is not None:
            args += ["--seed", str(seed)]
        args += knob_flags(knobs or {}) + list(extra_args)
        owns_log = log_path is None
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="sandbox-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        env = {"HEADSWAP_SANDBOX_API_KEY": "", "HEADSWAP_SANDBOX_CLIENT_ID": "",
               "HEADSWAP_SANDBOX_CLIENT_SECRET": "", "PYTHONUNBUFFERED": "1"}
        proc = spawn(args, env=env, log=log_path)
        sandbox = cls(proc, f"http://127.0.0.1:{port}", api_key, client_id, client_secret,
                      log_path)
        sandbox.owns_log = owns_log
        sandbox.wait_ready(timeout)
        return sandbox

    def wait_ready(self, timeout: float) -> None:
        """Poll ``/_sandbox/health``; raise :class:`SandboxError` (with the log) on failure."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SandboxError(f"sandbox exited with {self.proc.returncode}:\n{self.output()}")
            with contextlib.suppress(requests.RequestException):
                if self.session.get(self.url + "/_sandbox/health", timeout=1).ok:
                    return
            time.sleep(0.05)
        self.stop()
        raise SandboxError(f"sandbox not healthy after {timeout}s:\n{self.output()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        """Signal the process group, wait, return the exit status.

        A log file that ``start`` created is read into memory (see :meth:`output`) and deleted.
        """
        self.session.close()
        stop(self.proc, sig, timeout)
        if self.owns_log and self._final_output is None:
            self._final_output = self.output()
            self.log_path.unlink(missing_ok=True)
        return self.proc.returncode

    def output(self) -> str:
        """Everything the process printed (stdout and stderr), also after :meth:`stop`."""
        if self._final_output is not None:
            return self._final_output
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> SandboxProcess:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- control API -----------------------------------------------------------------------

    def _control(self, method: str, path: str, body: object = None) -> Any:
        response = self.session.request(method, f"{self.url}/_sandbox/{path}", json=body,
                                        timeout=10)
        if response.status_code != 200:
            raise SandboxError(f"{method} /_sandbox/{path}: {response.status_code} "
                               f"{response.text}")
        return response.json()

    def config(self, **knobs: object) -> dict[str, Any]:
        """Partial knob update when given knobs (POST), else the current knobs (GET)."""
        if knobs:
            return dict(self._control("POST", "config", knobs))
        return dict(self._control("GET", "config"))

    def stats(self) -> dict[str, Any]:
        """``GET /_sandbox/stats``."""
        return dict(self._control("GET", "stats"))

    def reset(self, reset_config: bool = False) -> dict[str, Any]:
        """Clear tasks, analyses, tokens and counters; optionally restore startup knobs."""
        return dict(self._control("POST", "reset", {"reset_config": reset_config}))

    def revoke_tokens(self) -> int:
        """Invalidate every issued token."""
        return int(self._control("POST", "tokens/revoke")["revoked"])

    def task(self, task_id: str) -> dict[str, Any]:
        """Internal view of one task (``/_sandbox/tasks/<id>``)."""
        return dict(self._control("GET", f"tasks/{task_id}"))

    # -- API helpers -----------------------------------------------------------------------

    def api_url(self, path: str) -> str:
        """``/v4/headswap/analyze`` -> ``http://host:port/api/open/v4/headswap/analyze``."""
        return f"{self.url}{API_ROOT}{path}"

    def headers(self) -> dict[str, str]:
        """Headers authenticating with the API key."""
        return {"x-api-key": self.api_key}

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        """An API request with the API key (``path`` below ``/api/open``)."""
        headers = {**self.headers(), **kw.pop("headers", {})}
        kw.setdefault("timeout", 10)
        return self.session.request(method, self.api_url(path), headers=headers, **kw)

    def analyze(self, video_url: str, timeout: float = 10.0) -> dict[str, Any]:
        """Submit an analysis and wait until it is final; return its detail ``data``."""
        body = self.call("POST", "/v4/headswap/analyze",
                         json={"video_url": video_url, "type": "head"}).json()
        if body.get("code") != 1000:
            raise SandboxError(f"analyze refused: {body}")
        return self.wait_final("/v4/headswap/analyze/detail", body["data"]["_id"], timeout)

    def wait_task(self, task_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Poll task detail until status 3 or 4; return its ``data``."""
        return self.wait_final("/v4/headswap/task/detail", task_id, timeout)

    def wait_final(self, path: str, record_id: str, timeout: float) -> dict[str, Any]:
        """Poll a detail endpoint until status 3 or 4."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.call("GET", path, params={"_id": record_id}).json()
            data = body.get("data") or {}
            if data.get("status") in (3, 4):
                return dict(data)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} {record_id} not final after {timeout}s: {body}")
            time.sleep(0.03)


@contextlib.contextmanager
def running_sandbox(**kw: Any) -> Iterator[SandboxProcess]:
    """Context manager: start a sandbox (``SandboxProcess.start`` arguments), stop it after."""
    sandbox = SandboxProcess.start(**kw)
    try:
        yield sandbox
    finally:
        sandbox.stop()


def sandbox_fixture(**kw: Any) -> Iterator[SandboxProcess]:
    """Body of a pytest fixture: ``yield from sandbox_fixture(knobs=...)``."""
    with running_sandbox(**kw) as sandbox:
        yield sandbox
