"""Serving a WSGI app in production: gunicorn, bounded threads, and a request buffer so
that a slow client never holds a thread.

Why this shape:

- **gunicorn worker processes with ``threads`` threads each** (the ``gthread`` worker).
  The receiver waits on Redis and Akool, not on the CPU: one process (the default) is
  enough for most, and replicas scale further. With several, the caller passes gunicorn
  hooks (``when_ready``, ``child_exit``) so that the master serves the metrics of all of
  them (prometheus-client's multiprocess mode: ``worker.webhook``).
- **A slow client costs a socket, not a thread.** gunicorn's ``gthread`` worker hands a
  connection to a thread once its first byte arrives and the thread then blocks reading
  headers and body with no time limit (gunicorn has no request read timeout): 1,500
  half-sent requests would hold every thread. :class:`BufferedThreadWorker` reads what is
  there without blocking, keeps it with the connection and gives the connection back to
  gunicorn's poller until the whole request (headers, and a body of ``Content-Length``
  or complete chunked framing) is in. Only then does a thread parse and run it, from
  memory. A request not complete ``request_timeout`` after its first read is closed;
  a connection silent for ``keepalive`` seconds too.
- **Bounded memory.** At most ``max_connections`` sockets; a request buffer holds at most
  ``max_head`` bytes of headers and ``2 * max_body`` bytes of body with its chunk framing
  (more framing than that: closed). A body past ``max_body`` is handed on at once (the app
  answers 413 from what it has) and the connection closed.

Plain HTTP/1.1 only: TLS ends at the Ingress (with TLS configured here the buffer steps
aside and gunicorn reads as usual).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

from gunicorn import glogging
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import _DEFER, ThreadWorker

log = logging.getLogger(__name__)

MORE, READY, REJECT = "more", "ready", "reject"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*([0-9]+)[ \t]*(?=\r\n|$)")
_CHUNKED = re.compile(rb"\r\ntransfer-encoding[ \t]*:[^\r\n]*chunked")
_EXPECT = re.compile(rb"\r\nexpect[ \t]*:[ \t]*100-continue")
_HEX = frozenset(b"0123456789abcdefABCDEF")
#: Connections that lingering closes may hold at once before further ones close at once.
_MAX_LINGERING = 256
_HEADERS_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: application/json\r\n"
    b'Content-Length: 28\r\nConnection: close\r\n\r\n{"error":"invalid delivery"}'
)


@dataclass(frozen=True)
class Limits:
    """What one receiver process holds at most, and for how long."""

    threads: int = 32
    max_connections: int = 500
    request_timeout: float = 10.0
    keepalive: int = 5
    max_body: int = 64 * 1024
    max_head: int = 16 * 1024
    graceful_timeout: int = 20


def request_state(buf: bytes, max_body: int, max_head: int) -> tuple[str, bool]:
    """Is the HTTP/1.1 request at the start of ``buf`` complete?

    Returns ``(MORE | READY | REJECT, oversize)``. ``READY`` also for a request the parser
    will refuse (malformed framing) and for a body past ``max_body`` (``oversize``: the
    app sees ``max_body + 1`` bytes and answers 413; the connection is then closed).
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return (REJECT if len(buf) > max_head else MORE), False
    if end > max_head:
        return REJECT, False
    head = buf[:end].lower()
    body = buf[end + 4 :]
    if _CHUNKED.search(head):
        return _chunked_state(body, max_body)
    match = _CONTENT_LENGTH.search(head)
    if match is None:
        return READY, False
    length = int(match.group(1)) if len(match.group(1)) <= 18 else max_body + 1
    if length > max_body:
        return READY, True
    return (READY if len(body) >= length else MORE), False


def _chunked_state(body: bytes, max_body: int) -> tuple[str, bool]:
    pos, total = 0, 0
    while True:
        eol = body.find(b"\r\n", pos)
        if eol < 0:
            return (MORE if len(body) - pos <= 1024 else READY), False
        line = body[pos:eol].split(b";", 1)[0].strip()
        if not line or len(line) > 16 or any(c not in _HEX for c in line):
            return READY, False  # malformed: gunicorn's parser answers 400
        size = int(line, 16)
        if size == 0:
            rest = body[eol + 2 :]
            done = rest.startswith(b"\r\n") or b"\r\n\r\n" in rest
            return (READY if done else MORE), False
        total += size
        if total > max_body:
            return READY, True
        pos = eol + 2 + size + 2
        if len(body) < pos:
            return MORE, False


class BufferedThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's ``gthread`` worker with a non-blocking request buffer (module docstring).

    :attr:`limits` is set on a subclass made by :func:`serve`.
    """

    limits: ClassVar[Limits] = Limits()

    def init_process(self) -> None:
        # gunicorn closes a finished connection gracefully (FIN, then up to 2 s reading
        # what the client still sends) on its event-loop thread: a client that never
        # closes would stall every other connection. Those closes run here instead.
        self._closer = ThreadPoolExecutor(max_workers=4, thread_name_prefix="close")
        self._lingering = 0
        super().init_process()

    def handle(self, conn: Any) -> Any:
        if self.cfg.is_ssl or conn.is_http2:
            return super().handle(conn)
        verdict = self._buffer(conn)
        if verdict is False:
            conn.hs_abort = True  # nothing was answered: no need to linger
        if verdict is not None:
            return verdict
        return super().handle(conn)

    def finish_request(self, conn: Any, fs: Any) -> None:
        try:
            result = False if fs.cancelled() else fs.result()
        except Exception:
            result = False
        if result is _DEFER or result:
            super().finish_request(conn, fs)
            return
        self.nr_conns -= 1
        if getattr(conn, "hs_abort", False) or self._lingering >= _MAX_LINGERING:
            conn.close()
            return
        self._lingering += 1
        self._closer.submit(self._close_gracefully, conn)

    def _close_gracefully(self, conn: Any) -> None:
        try:
            with contextlib.suppress(OSError):
                conn.close(graceful=True)
        finally:
            self.method_queue.defer(self._closed)

    def _closed(self) -> None:
        self._lingering -= 1

    def _buffer(self, conn: Any) -> Any:
        """``None`` when the request is complete (the parser reads it from memory),
        ``_DEFER`` to wait for more without a thread, ``False`` to close."""
        lim = self.limits
        buf: bytearray | None = getattr(conn, "hs_buf", None)
        if buf is None:
            buf = conn.hs_buf = bytearray()
            conn.hs_deadline = time.monotonic() + lim.request_timeout
            conn.hs_continued = False
            if conn.parser is not None:  # kept alive: bytes read ahead of the last request
                buf += conn.parser.unreader.take_buffered()
        raw_cap = lim.max_head + 2 * lim.max_body + 4096  # chunk framing included
        closed = False
        try:
            conn.sock.setblocking(False)
            while len(buf) <= raw_cap:
                data = conn.sock.recv(65536)
                if not data:
                    closed = True
                    break
                buf += data
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            return False
        state, oversize = request_state(bytes(buf), lim.max_body, lim.max_head)
        if state == MORE and (closed or len(buf) > raw_cap):
            return False
        if state == REJECT:
            self._reply_raw(conn, _HEADERS_TOO_LARGE)
            return False
        if state == MORE:
            if time.monotonic() > conn.hs_deadline:
                return False
            if not conn.hs_continued and b"\r\n\r\n" in buf and _EXPECT.search(bytes(buf).lower()):
                conn.hs_continued = self._reply_raw(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
            return _DEFER
        conn.hs_buf = None
        conn.hs_close = oversize
        conn.sock.setblocking(True)
        conn.init()
        conn.parser.unreader.unread(bytes(buf))
        conn.data_ready = True
        return None

    @staticmethod
    def _reply_raw(conn: Any, data: bytes) -> bool:
        try:
            conn.sock.setblocking(True)
            conn.sock.settimeout(1.0)
            conn.sock.sendall(data)
        except OSError:
            return False
        finally:
            with contextlib.suppress(OSError):
                conn.sock.setblocking(False)
        return True

    def handle_request(self, req: Any, conn: Any) -> Any:
        if getattr(conn, "hs_close", False):
            req.must_close = True  # the answer says "Connection: close", and means it
        return super().handle_request(req, conn)

    def _keepalive_after(self, conn: Any, keepalive: Any) -> Any:
        if getattr(conn, "hs_close", False):
            return False  # an oversize body was left unread: close rather than drain it
        return super()._keepalive_after(conn, keepalive)

    def murder_pending(self) -> None:
        """Close waiting connections past their keepalive *or* their request deadline (the
        queue is not sorted by the latter, so every entry is looked at: at most
        ``max_connections``, once a second)."""
        now = time.monotonic()
        keep: deque[Any] = deque()
        pending: deque[Any] = getattr(self, "pending_conns")  # noqa: B009 (untyped base)
        for conn in pending:
            deadline = getattr(conn, "hs_deadline", None)
            if conn.timeout <= now or (deadline is not None and deadline <= now
                                       and getattr(conn, "hs_buf", None) is not None):
                with contextlib.suppress(OSError, KeyError, ValueError):
                    self.poller.unregister(conn.sock)
                self.nr_conns -= 1
                conn.close()
            else:
                keep.append(conn)
        self.pending_conns = keep


class RootLogger(glogging.Logger):  # type: ignore[misc]
    """gunicorn's error log (boot, worker exits, timeouts) handed to the root logger, so
    the process's logging setup (``HEADSWAP_LOG_FORMAT``/``LOG_LEVEL``) rules its lines
    too instead of gunicorn's own plain-text handler and level."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in list(self.error_log.handlers):
            self.error_log.removeHandler(handler)
        self.error_log.propagate = True
        self.error_log.setLevel(logging.NOTSET)


class _Application(BaseApplication):  # type: ignore[misc]
    def __init__(self, load: Callable[[], Any], options: dict[str, Any]) -> None:
        self._load = load
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._load()


def gunicorn_options(
    host: str, port: int, limits: Limits, *, workers: int = 1,
    hooks: Mapping[str, Callable[..., Any]] | None = None,
) -> dict[str, Any]:
    """The gunicorn settings the receiver runs with (also what the docs list); ``hooks``
    are gunicorn server hooks by name (``when_ready``, ``child_exit``, ``on_exit``...)."""
    worker = type("HeadswapWorker", (BufferedThreadWorker,), {"limits": limits})
    return {
        **(hooks or {}),
        "bind": [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
        "workers": workers,
        "worker_class": worker,
        "threads": limits.threads,
        "worker_connections": limits.max_connections,
        # The arbiter restarts a worker whose main loop stalls this long (request
        # threads are bounded by the request timeout and the Akool/Redis timeouts).
        "timeout": 30,
        "graceful_timeout": limits.graceful_timeout,
        "keepalive": limits.keepalive,
        "limit_request_line": 4094,
        "limit_request_fields": 32,
        "limit_request_field_size": 4094,
        "http_protocols": "h1",
        "backlog": 512,
        "accesslog": None,
        "errorlog": "-",
        "logger_class": RootLogger,
        "proc_name": "headswap-webhook",
        "worker_tmp_dir": "/tmp",  # noqa: S108 (the one writable path in the pod)
        "control_socket_disable": True,
    }


def serve(
    load: Callable[[], Any], host: str, port: int, limits: Limits, *, workers: int = 1,
    hooks: Mapping[str, Callable[..., Any]] | None = None,
) -> None:
    """Run gunicorn in the foreground; ``load`` builds the WSGI app inside each worker
    process (so its threads and pools live there). Returns on SIGTERM / SIGINT after a
    graceful stop."""
    _Application(load, gunicorn_options(host, port, limits, workers=workers,
                                        hooks=hooks)).run()  # fmt: skip


__all__ = ["BufferedThreadWorker", "Limits", "RootLogger", "gunicorn_options", "request_state",
           "serve"]
