"""The sandbox for tests: the dev stack's process handle (``worker.devstack.sandbox``) and
a small recording HTTP server for webhook deliveries (:class:`WebhookReceiver`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from worker.devstack.sandbox import (
    API_ROOT,
    DEFAULT_API_KEY,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    FAST_KNOBS,
    SandboxError,
    SandboxProcess,
    knob_flags,
    running_sandbox,
    sandbox_fixture,
)

__all__ = ["API_ROOT", "DEFAULT_API_KEY", "DEFAULT_CLIENT_ID", "DEFAULT_CLIENT_SECRET",
           "FAST_KNOBS", "SandboxError", "SandboxProcess", "WebhookReceiver", "knob_flags",
           "running_sandbox", "sandbox_fixture"]


class WebhookReceiver:
    """A tiny HTTP server (Werkzeug, in a thread) that records webhook POSTs.

    ``statuses`` is the sequence of HTTP statuses to answer, one per request; when it runs
    out every further request gets ``default_status``.
    """

    def __init__(self, statuses: Sequence[int] = (), default_status: int = 200) -> None:
        import threading

        from werkzeug.serving import WSGIRequestHandler, make_server
        from werkzeug.wrappers import Request, Response

        class QuietHandler(WSGIRequestHandler):
            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                pass

        self._statuses = list(statuses)
        self._default = default_status
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []

        def app(environ: Any, start_response: Any) -> Any:
            request = Request(environ)
            with self._lock:
                status = self._statuses.pop(0) if self._statuses else self._default
                self.requests.append({
                    "path": request.full_path, "headers": dict(request.headers),
                    "body": request.get_json(silent=True), "status": status,
                    "at": time.monotonic(),
                })
            return Response("ok", status=status)(environ, start_response)

        self._server = make_server("127.0.0.1", 0, app, threaded=True,
                                   request_handler=QuietHandler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def hook_url(self, job_id: str | None = None) -> str:
        """The URL to put in ``webhookUrl`` (with ``?job_id=`` when given)."""
        return f"{self.url}/hook" + (f"?job_id={job_id}" if job_id else "")

    def bodies(self) -> list[Any]:
        """JSON bodies received so far."""
        with self._lock:
            return [r["body"] for r in self.requests]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Wait until ``count`` requests arrived; return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.requests) >= count:
                    return list(self.requests)
            time.sleep(0.02)
        raise TimeoutError(f"got {len(self.requests)} webhook requests, wanted {count}")

    def close(self) -> None:
        """Stop the server."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> WebhookReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
