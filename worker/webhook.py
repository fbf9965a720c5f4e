"""The Akool webhook receiver: a WSGI app, served by gunicorn (``headswap webhook``).

A delivery is a **hint, not the truth**. Akool's signature hashes public values only and
AES-CBC has no MAC (API reference 8.2): anyone with the client id can sign a body, and a
receiver that tells a bad padding from other failures decrypts and forges deliveries for
an attacker. So ``POST /webhooks/akool[?job_id=...]``:

1. reads at most ``MAX_BODY_BYTES + 1`` bytes from the stream, with or without a
   Content-Length (413 past it);
2. checks every field, the timestamp window, the signature, then base64, decryption,
   padding, the payload's JSON — **all of them, every time**, and folds the results into
   one verdict (:func:`_open`): whatever failed, the answer is the same ``400
   {"error": "invalid delivery"}`` (a replayed delivery too), no sooner than
   ``HEADSWAP_WEBHOOK_REFUSAL_FLOOR_MS`` after the body was read;
3. takes the payload as "task ``_id`` changed": a final status (3, 4) is confirmed with one
   Get Task Detail call and the outcome and output URL come from that answer; a status 2
   only brings the job's next poll forward. When the detail call cannot be made (Akool
   down, detail rate spent) the job is polled at once and the answer is 200: polling
   follows it, whatever Akool's retries do;
4. binds an ambiguous create (our ``job_id`` in the query, remote id unknown) only when
   Akool's detail knows the task and its source video is the job's (:meth:`_bind`);
   without an answer from Akool that is a 503, so Akool retries: only the delivery knows;
5. answers 200 once stored. Our own failure (Redis down) is a 503; bad input never a 5xx.

``HEADSWAP_WEBHOOK_TRUST_PAYLOAD=true`` applies the payload as sent instead (docs/
OPERATIONS.md: a risk). ``GET /healthz`` answers 200 while Redis answers.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any

from headswap_client import states
from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from config.logs import setup_logging
from config.settings import Settings, get_settings
from worker import metrics, storing, tracing
from worker.akool_types import STATUS_COMPLETED, STATUS_FAILED, Task
from worker.dispatch import CeleryDispatcher, sender_app
from worker.errors import AkoolError, AkoolNotFound, ConfigError, NonceReplayed
from worker.metrics import WEBHOOK_CONFIRMATIONS, WEBHOOK_DELIVERIES
from worker.runtime import Runtime
from worker.store import open_store
from worker.webhook_crypto import (
    IvPadding,
    WebhookCryptoError,
    decrypt_uniform,
    derive_iv,
    derive_key,
    sign,
)
from worker.wsgi_server import Limits
from worker.wsgi_server import serve as serve_wsgi

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
_FIELDS = ("signature", "dataEncrypt", "timestamp", "nonce")
#: A poller thread's wait for a detail-rate slot; past it the job is polled instead.
DETAIL_MAX_BLOCK_SECONDS = 1.0
#: A receiver that reaches Redis says so this often (its word lasts three beats).
RECEIVER_BEAT_SECONDS = 5.0
#: Timestamps are epoch milliseconds: 13 digits today; more than 16 is not a timestamp.
_MAX_TIMESTAMP = 10**16
_MAX_FIELD = 128
#: Stands in for a missing or unusable field so that the same work is done anyway.
_FILLER = {"signature": "0" * 40, "dataEncrypt": "A" * 88, "timestamp": 0, "nonce": "0"}


def _json(status: int, **body: Any) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def invalid_delivery() -> Response:
    """The one answer to every delivery that cannot be authenticated, decoded, decrypted,
    unpadded or parsed, or is stale or replayed."""
    return _json(400, error="invalid delivery")


def _accepted() -> Response:
    return _json(200, ok=True)


class _Invalid:
    """What a JSON float, NaN/Infinity or an over-long integer parses to: never valid."""


_INVALID = _Invalid()


def _int_or_invalid(text: str) -> int | _Invalid:
    return int(text) if len(text) <= 19 else _INVALID


@dataclass(frozen=True)
class Opened:
    """The verdict on a delivery: the payload when, and only when, everything held."""

    payload: dict[str, Any] | None
    digest: str


def read_body(environ: dict[str, Any], cap: int) -> bytes | None:
    """At most ``cap`` bytes of the request body, streamed from ``wsgi.input``; None when
    there are more. Never reads more than ``cap + 1`` bytes, nor past a Content-Length; a
    body without one (chunked) is read to its end only where the server marks the input
    terminated (``wsgi.input_terminated``, as gunicorn does), else it counts as empty."""
    declared = environ.get("CONTENT_LENGTH") or ""
    if declared.isdigit():
        if int(declared) > cap:
            return None
        want = int(declared)
    elif environ.get("wsgi.input_terminated"):
        want = cap + 1
    else:
        return b""
    stream = environ["wsgi.input"]
    parts: list[bytes] = []
    size = 0
    while size < want:
        chunk = stream.read(min(16384, want - size))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return None if size > cap else b"".join(parts)


def _envelope(raw: bytes) -> tuple[dict[str, Any], bool]:
    """The four delivery fields, normalised (timestamp an int, the rest strings), and
    whether they were all usable. Unusable fields are replaced by fillers."""
    try:
        body = json.loads(raw, parse_float=lambda _: _INVALID,
                          parse_constant=lambda _: _INVALID, parse_int=_int_or_invalid)
    except (ValueError, UnicodeDecodeError, RecursionError):
        body = None
    if not isinstance(body, dict):
        return dict(_FILLER), False
    out, ok = dict(_FILLER), True
    signature, data, ts, nonce = (body.get(k) for k in _FIELDS)
    if isinstance(signature, str) and len(signature) <= _MAX_FIELD:
        out["signature"] = signature
    else:
        ok = False
    if isinstance(data, str) and 0 < len(data) <= MAX_BODY_BYTES:
        out["dataEncrypt"] = data
    else:
        ok = False
    if isinstance(ts, str) and 0 < len(ts) <= 16 and ts.isascii() and ts.isdigit():
        ts = int(ts)
    if isinstance(ts, int) and not isinstance(ts, bool) and 0 < ts < _MAX_TIMESTAMP:
        out["timestamp"] = ts
    else:
        ok = False
    if isinstance(nonce, int) and not isinstance(nonce, bool) and nonce >= 0:
        nonce = str(nonce)
    if isinstance(nonce, str) and 0 < len(nonce) <= _MAX_FIELD:
        out["nonce"] = nonce
    else:
        ok = False
    return out, ok


def _payload(plaintext: bytes) -> tuple[dict[str, Any], bool]:
    try:
        payload = json.loads(plaintext.decode("utf-8"), parse_constant=lambda _: _INVALID)
    except (ValueError, UnicodeDecodeError, RecursionError):
        payload = None
    if not isinstance(payload, dict):
        return {}, False
    remote_id, status = payload.get("_id"), payload.get("status")
    ok = (isinstance(remote_id, str) and 0 < len(remote_id) <= _MAX_FIELD
          and isinstance(status, int) and not isinstance(status, bool))
    return payload, ok


class Opener:
    """Authenticates, decrypts and parses a delivery body into one verdict (:meth:`open`)."""

    def __init__(self, client_id: str, client_secret: str, pad: IvPadding,
                 max_skew_seconds: float) -> None:
        self.client_id = client_id
        self._key = derive_key(client_secret)
        self._iv = derive_iv(client_id, pad)
        self.window_ms = max_skew_seconds * 1000.0

    def __repr__(self) -> str:  # never the key
        return f"Opener(client_id={self.client_id!r})"

    def open(self, raw: bytes) -> Opened:
        """One verdict from every check, each made whatever the others found: the fields,
        the signature (constant-time compare), the timestamp window, base64, decryption,
        the padding and the payload's JSON — no step is skipped when an earlier one failed,
        and only the folded result is returned."""
        fields, fields_ok = _envelope(raw)
        expected = sign(self.client_id, fields["timestamp"], fields["nonce"],
                        fields["dataEncrypt"])
        signed = hmac.compare_digest(expected.encode("ascii"),
                                     fields["signature"].strip().lower().encode("utf-8"))
        fresh = abs(time.time() * 1000.0 - fields["timestamp"]) <= self.window_ms
        plaintext, decrypted = decrypt_uniform(fields["dataEncrypt"], self._key, self._iv)
        payload, parsed = _payload(plaintext)
        digest = hashlib.sha256(
            f"{fields['nonce']}|{fields['timestamp']}|{fields['signature']}".encode()
        ).hexdigest()
        valid = fields_ok & signed & fresh & decrypted & parsed
        return Opened(payload if valid else None, digest)


def check_settings(s: Settings) -> None:
    """Fail fast (before gunicorn starts a worker) when the receiver cannot decrypt."""
    if not (s.akool_client_id and (s.akool_client_secret or s.akool_api_key)):
        raise ConfigError(
            "the webhook receiver needs HEADSWAP_AKOOL_CLIENT_ID (the AES IV) and "
            "HEADSWAP_AKOOL_CLIENT_SECRET (the AES key)"
        )
    pad: IvPadding = "space" if s.webhook_iv_padding == "space" else "zero"
    try:
        derive_key((s.akool_client_secret or s.akool_api_key).get())
        derive_iv(s.akool_client_id, pad)
    except WebhookCryptoError as exc:  # says lengths only, never the secret
        raise ConfigError(f"webhook receiver: {exc}") from None


class WebhookApp:
    """The receiver. One instance per process; thread-safe."""

    def __init__(self, rt: Runtime) -> None:
        s = rt.settings
        check_settings(s)
        self.rt = rt
        self.client_id = s.akool_client_id
        pad: IvPadding = "space" if s.webhook_iv_padding == "space" else "zero"
        # The docs: the API key shown in the UI *is* the clientSecret.
        self.opener = Opener(
            s.akool_client_id,
            (s.akool_client_secret or s.akool_api_key).get(),
            pad,
            s.webhook_max_skew_seconds,
        )
        self.floor = s.webhook_refusal_floor_ms / 1000.0
        self.trust_payload = s.webhook_trust_payload
        self.urls = Map(
            [
                Rule("/webhooks/akool", endpoint="delivery", methods=["POST"]),
                Rule("/healthz", endpoint="health", methods=["GET"]),
            ]
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        try:
            endpoint, _ = self.urls.bind_to_environ(environ).match()
            if endpoint == "health":
                response = self.health()
            else:
                response = self.delivery(environ)
                WEBHOOK_DELIVERIES.labels(_outcome(response.status_code)).inc()
        except HTTPException as exc:
            response = _json(exc.code or 400, error=exc.name)
        except Exception:  # our own failure, never the sender's: let Akool retry
            log.exception("webhook handling failed")
            response = _json(503, error="temporarily unavailable")
        return response(environ, start_response)

    def health(self) -> Response:
        self.rt.store.ping()
        return _json(200, ok=True)

    # --- the delivery ---------------------------------------------------------------------
    def delivery(self, environ: dict[str, Any]) -> Response:
        raw = read_body(environ, MAX_BODY_BYTES)
        if raw is None:
            return _json(413, error="body too large")
        started = time.perf_counter()
        opened = self.opener.open(raw)
        if opened.payload is None or self.rt.store.guards.nonce_seen(opened.digest):
            return self._refuse(started)
        job_hint = Request(environ).args.get("job_id")
        try:
            return self._apply(opened.payload, job_hint, opened.digest)
        except NonceReplayed:  # the same delivery, stored by a concurrent request
            return self._refuse(started)

    def _refuse(self, started: float) -> Response:
        pause = self.floor - (time.perf_counter() - started)
        if pause > 0:
            time.sleep(pause)
        return invalid_delivery()

    def _apply(self, payload: dict[str, Any], job_hint: str | None, nonce: str) -> Response:
        job_id = self.rt.store.job_for_remote(payload["_id"])
        known = job_id or job_hint
        stored = self.rt.store.traceparent(known) if known and tracing.enabled() else None
        with tracing.job_span("headswap.webhook", stored, "SERVER", job_id=known,
                              remote_id=payload["_id"], remote_status=payload["status"]):
            return self._route(payload, job_hint, nonce, job_id)

    def _route(self, payload: dict[str, Any], job_hint: str | None, nonce: str,
               job_id: str | None) -> Response:  # fmt: skip
        remote_id: str = payload["_id"]
        status: int = payload["status"]
        if job_id is None and job_hint:
            return self._bind(job_hint, remote_id, status, payload, nonce)
        if job_id is None:
            log.info("webhook for an unknown task", extra={"remote_id": remote_id})
            return self._done(nonce)
        if self.trust_payload:
            return self._store(job_id, _task_from_payload(payload), nonce)
        return self._confirm(job_id, remote_id, status, nonce)

    def _confirm(self, job_id: str, remote_id: str, status: int, nonce: str) -> Response:
        """A final status is asked of Akool; anything else only brings the poll forward."""
        record = self.rt.store.get(job_id)
        if record is None or record["state"] not in states.REMOTE_ACTIVE:
            return self._done(nonce)  # ended already (or not followed yet): nothing to do
        if status not in (STATUS_COMPLETED, STATUS_FAILED):
            self._poll_soon(job_id, self.rt.settings.poll_min_interval_seconds)
            return self._done(nonce)
        task = self._detail(remote_id)
        if not isinstance(task, Task) or task.remote_id != remote_id:
            WEBHOOK_CONFIRMATIONS.labels("unavailable").inc()
            self._poll_soon(job_id, 0.0)  # polling follows it; Akool need not retry
            return self._done(nonce)
        agreed = task.status == status
        WEBHOOK_CONFIRMATIONS.labels("agreed" if agreed else "disagreed").inc()
        if not agreed:
            log.warning("webhook status not confirmed by task detail",
                        extra={"job_id": job_id, "remote_id": remote_id, "status": status,
                               "detail_status": task.status})  # fmt: skip
        return self._store(job_id, task, nonce)

    def _store(self, job_id: str, task: Task, nonce: str) -> Response:
        final = self.rt.jobs.apply_remote_status(job_id, task, source="webhook", nonce=nonce)
        if final:
            # The receiver process does not load the producers' signal receivers: notify
            # where they live, in a worker (or send the copy of a finished output).
            storing.follow_up(self.rt, job_id, inline=False)
        else:
            self.rt.store.guards.use_nonce(nonce, self.rt.jobs.t.nonce_ttl)
        log.info("webhook applied", extra={"job_id": job_id, "remote_id": task.remote_id,
                                           "status": task.status})  # fmt: skip
        return _accepted()

    def _bind(self, job_id: str, remote_id: str, status: int, payload: dict[str, Any],
              nonce: str) -> Response:
        """An ambiguous create did happen: record its remote id and follow it — once Akool's
        detail answers for that id with this job's source video (unless trusted)."""
        record = self.rt.store.get(job_id)
        if record is not None and record.get("remote_id") == remote_id:
            # The create's answer was recorded just after our first lookup.
            if self.trust_payload:
                return self._store(job_id, _task_from_payload(payload), nonce)
            return self._confirm(job_id, remote_id, status, nonce)
        revivable = record is not None and states.revivable(record)  # a late binding
        if record is None or (record["state"] != states.SUBMITTING and not revivable):
            return self._done(nonce)
        task: Task | None = _task_from_payload(payload) if self.trust_payload else None
        if not self.trust_payload:
            answer = self._detail(remote_id)
            if answer is None:
                WEBHOOK_CONFIRMATIONS.labels("unavailable").inc()
                # Only this delivery knows the binding; if Akool gives up its retries, a
                # resubmit must not count this refusal as a receiver that was reachable.
                self.rt.store.guards.receiver_turned_away(ttl=3 * RECEIVER_BEAT_SECONDS)
                return _json(503, error="temporarily unavailable")
            source = (record.get("request") or {}).get("video_url")
            if (not isinstance(answer, Task) or answer.remote_id != remote_id
                    or answer.source_video_url != source):
                WEBHOOK_CONFIRMATIONS.labels("bind_refused").inc()
                log.warning("webhook binding refused: Akool does not know this task for "
                            "this job", extra={"job_id": job_id, "remote_id": remote_id})
                return self._done(nonce)
            task = answer
        assert task is not None
        if revivable:
            if not self.rt.jobs.revive(job_id, remote_id,
                                       self.rt.settings.safety_net_poll_seconds):  # fmt: skip
                return self._done(nonce)
            WEBHOOK_CONFIRMATIONS.labels("revived").inc()
            return self._store(job_id, task, nonce)
        if not self.rt.jobs.bind_by_webhook(
            job_id, remote_id, self.rt.settings.safety_net_poll_seconds
        ):
            other = self.rt.store.job_for_remote(remote_id)
            if other is None:
                return self._done(nonce)
            job_id = other
        else:
            # A webhook may simply beat the create's answer (normal at short processing
            # times); only a create already marked ambiguous is worth a warning.
            level = logging.WARNING if record.get("ambiguous_at") else logging.INFO
            log.log(level, "job bound to its task by webhook",
                    extra={"job_id": job_id, "remote_id": remote_id})  # fmt: skip
            WEBHOOK_CONFIRMATIONS.labels("bound").inc()
        return self._store(job_id, task, nonce)

    # --- helpers ----------------------------------------------------------------------------
    def _detail(self, remote_id: str) -> Task | AkoolNotFound | None:
        """Akool's own word on a task: the Task, AkoolNotFound, or None when it cannot be
        had now (over the global detail rate, or Akool failing)."""
        if self.rt.detail_limiter.wait(max_block=DETAIL_MAX_BLOCK_SECONDS) > 0:
            return None
        try:
            return self.rt.akool.task_detail(remote_id)
        except AkoolNotFound as exc:
            return exc
        except AkoolError as exc:
            log.warning("webhook confirmation failed", extra={"remote_id": remote_id,
                                                              "error": type(exc).__name__})
            return None

    def _poll_soon(self, job_id: str, delay: float) -> None:
        self.rt.store.schedule("poll", job_id, delay, "xx")

    def _done(self, nonce: str) -> Response:
        self.rt.store.guards.use_nonce(nonce, self.rt.jobs.t.nonce_ttl)
        return _accepted()


def _task_from_payload(payload: dict[str, Any]) -> Task:
    """The payload as a Task: only with HEADSWAP_WEBHOOK_TRUST_PAYLOAD (forgeable)."""
    url = payload.get("url")
    code, reason = payload.get("error_code"), payload.get("error_reason")
    return Task(
        remote_id=payload["_id"],
        status=payload["status"],
        output_url=url if isinstance(url, str) and url else None,
        error_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        error_reason=reason if isinstance(reason, str) else None,
    )


def _outcome(status: int) -> str:
    return {200: "applied", 400: "refused", 413: "too_large"}.get(status, "error")


def create_app(settings: Settings | None = None) -> WebhookApp:
    """The WSGI app for any server (``gunicorn 'worker.webhook:create_app()'``). Prefer
    ``headswap webhook``: plain gunicorn workers let slow clients hold threads."""
    s = settings or get_settings()
    setup_logging(s)
    return WebhookApp(Runtime(s, CeleryDispatcher(sender_app(s, "headswap-webhook"))))


def limits(settings: Settings) -> Limits:
    """The receiver's bounds, from ``HEADSWAP_WEBHOOK_*`` settings."""
    return Limits(
        threads=settings.webhook_threads,
        max_connections=settings.webhook_max_connections,
        request_timeout=settings.webhook_request_timeout_seconds,
        keepalive=settings.webhook_keepalive_seconds,
        max_body=MAX_BODY_BYTES,
    )


def _heartbeat(rt: Runtime) -> None:
    """Say, every ``RECEIVER_BEAT_SECONDS`` while Redis answers, that a receiver is up:
    the sweeper counts an ambiguous job's grace from then (``receiver_up_since``)."""
    while True:
        try:
            rt.store.guards.receiver_alive(ttl=3 * RECEIVER_BEAT_SECONDS)
        except Exception:  # Redis away: the word lapses, which is the point
            log.warning("webhook receiver cannot reach Redis", exc_info=False)
        time.sleep(RECEIVER_BEAT_SECONDS)


#: Set (by ``headswap webhook``, before prometheus-client is imported) when the receiver's
#: processes share their metrics through files: prometheus-client's multiprocess mode.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _metrics_port() -> int:
    return int(os.environ.get("HEADSWAP_METRICS_PORT", "0") or 0)


def _load_in_worker(host: str, port: int, *, serve_metrics: bool) -> WebhookApp:
    """Runs in each gunicorn worker process: the app, its Runtime and the receiver's
    heartbeat live where the requests are served (and the metrics server too, unless the
    master serves every process's: ``serve_metrics`` False)."""
    app = create_app()
    tracing.setup("headswap-webhook")  # here, after gunicorn's fork: the export thread lives
    if serve_metrics:
        metrics.start_metrics_server(
            _metrics_port(), app.rt.store, component="webhook",
            breaker_failures=app.rt.settings.akool_breaker_failures,
            producer_label=app.rt.settings.producer_policy.label,
        )  # fmt: skip
    threading.Thread(target=_heartbeat, args=(app.rt,), name="receiver-heartbeat",
                     daemon=True).start()
    log.info("webhook receiver listening",
             extra={"host": host, "port": port, "pid": os.getpid()})
    return app


def multiprocess_hooks(settings: Settings, metrics_port: int) -> dict[str, Any]:
    """gunicorn server hooks for multiprocess metrics: the master serves, on
    ``metrics_port``, the sum of every worker process's counters (their files in
    ``PROMETHEUS_MULTIPROC_DIR``) and the global gauges; a worker that exits has its live
    gauges dropped (``mark_process_dead``), its counts stay."""

    def when_ready(server: Any) -> None:
        if metrics_port:
            registry = metrics.multiprocess_registry(
                open_store(settings), component="webhook",
                breaker_failures=settings.akool_breaker_failures,
                producer_label=settings.producer_policy.label,
            )  # fmt: skip
            metrics.serve_registry(metrics_port, registry)

    def child_exit(server: Any, worker: Any) -> None:
        metrics.mark_process_dead(worker.pid)

    return {"when_ready": when_ready, "child_exit": child_exit}


def serve(host: str, port: int) -> None:
    """``headswap webhook``: gunicorn with ``HEADSWAP_WEBHOOK_PROCESSES`` processes of
    bounded threads and request buffers (:mod:`worker.wsgi_server`); put a TLS proxy in
    front. Returns after SIGTERM."""
    settings = get_settings()
    check_settings(settings)
    setup_logging(settings)  # the gunicorn arbiter's lines; the worker process sets its own
    shared = bool(os.environ.get(MULTIPROC_ENV))
    if settings.webhook_processes > 1 and not shared:
        raise ConfigError(
            f"HEADSWAP_WEBHOOK_PROCESSES={settings.webhook_processes} needs {MULTIPROC_ENV} "
            "(a directory for the processes' shared metrics; `headswap webhook` sets one)"
        )
    hooks = multiprocess_hooks(settings, _metrics_port()) if shared else {}
    print(f"webhook listening on http://{host}:{port}", flush=True)
    serve_wsgi(functools.partial(_load_in_worker, host, port, serve_metrics=not shared),
               host, port, limits(settings), workers=settings.webhook_processes,
               hooks=hooks)  # fmt: skip
