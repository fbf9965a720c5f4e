"""Process lifecycle: bind a threaded Werkzeug server, serve, shut down on SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from dataclasses import dataclass, field
from types import FrameType
from typing import TextIO

from werkzeug.serving import BaseWSGIServer, make_server

from worker.sandbox.app import SandboxApp
from worker.sandbox.engine import Engine


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):  # noqa: S104 - only mapping a bind address to a URL
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


@dataclass
class RunningServer:
    """A bound server serving on a background thread. ``close()`` stops everything."""

    server: BaseWSGIServer
    engine: Engine
    thread: threading.Thread
    url: str
    closed: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self.server.server_port)

    def close(self) -> None:
        """Stop accepting, stop the webhook machinery, release the socket. Idempotent."""
        if self.closed.is_set():
            return
        self.closed.set()
        self.server.shutdown()
        self.engine.close()
        self.server.server_close()


def start_background(
    engine: Engine, host: str, port: int, public_url: str | None = None, access_log: bool = False
) -> RunningServer:
    """Bind ``host:port`` (0 picks a free port) and serve on a daemon thread."""
    logging.getLogger("werkzeug").setLevel(logging.INFO if access_log else logging.WARNING)
    server = make_server(host, port, SandboxApp(engine), threaded=True)
    bound = int(server.server_port)
    engine.base_url = (public_url or f"http://{_url_host(host)}:{bound}").rstrip("/")
    engine.start()
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="sandbox-http", daemon=True
    )
    thread.start()
    return RunningServer(server, engine, thread, engine.base_url)


def _install_stop_handlers(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)


def serve(
    engine: Engine,
    host: str,
    port: int,
    public_url: str | None = None,
    access_log: bool = False,
    out: TextIO = sys.stdout,
) -> int:
    """Run until SIGTERM/SIGINT; print the ready line; return the exit status (0)."""
    stop = threading.Event()
    _install_stop_handlers(stop)
    running = start_background(engine, host, port, public_url, access_log)
    shown_host = f"[{host}]" if ":" in host else host
    print(f"sandbox listening on http://{shown_host}:{running.port}", file=out, flush=True)
    try:
        while not stop.wait(0.5):
            if not running.thread.is_alive():
                return 1
    finally:
        running.close()
    return 0
