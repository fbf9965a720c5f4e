"""The Akool webhook receiver: a WSGI app (``headswap webhook`` or any WSGI server).

``POST /webhooks/akool[?job_id=...]`` takes a delivery ``{signature, dataEncrypt,
timestamp, nonce}`` and, in this order:

1. refuses a body that is not a JSON object of the four fields (400);
2. refuses a timestamp outside ``HEADSWAP_WEBHOOK_MAX_SKEW_SECONDS`` of now (401);
3. verifies the SHA-1 signature in constant time (401) — before any other work;
4. refuses a nonce already seen (401): nonces are kept in Redis with a TTL;
5. decrypts (AES-CBC, key and IV per section 8 of the API reference) (400 if it fails);
6. binds the job: by the Akool task id, or by our ``job_id`` in the query — which is how an
   ambiguous create (we never learned the remote id) is resolved;
7. applies the status with :meth:`worker.jobs.Jobs.apply_remote_status`, the poller's own,
   recording the nonce in the same atomic step that stores the outcome (a delivery whose
   storing failed can be retried by Akool; one that was stored cannot be replayed);
8. answers 200 only after the state is stored. Our own failure (Redis down) is a 503 so
   Akool retries; bad input is never a 5xx.

``GET /healthz`` answers 200 while Redis answers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from config.logs import setup_logging
from config.settings import Settings, get_settings
from worker import states
from worker.akool_types import Task
from worker.dispatch import CeleryDispatcher, sender_app
from worker.errors import ConfigError, NonceReplayed
from worker.metrics import WEBHOOK_DELIVERIES, start_metrics_server
from worker.runtime import Runtime
from worker.webhook_crypto import IvPadding, WebhookCryptoError, open_delivery, verify_signature

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
_FIELDS = ("signature", "dataEncrypt", "timestamp", "nonce")


def _json(status: int, **body: Any) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


class WebhookApp:
    """The receiver. One instance per process; thread-safe."""

    def __init__(self, rt: Runtime) -> None:
        s = rt.settings
        if not (s.akool_client_id and (s.akool_client_secret or s.akool_api_key)):
            raise ConfigError(
                "the webhook receiver needs HEADSWAP_AKOOL_CLIENT_ID (the AES IV) and "
                "HEADSWAP_AKOOL_CLIENT_SECRET (the AES key)"
            )
        self.rt = rt
        self.client_id = s.akool_client_id
        # The docs: the API key shown in the UI *is* the clientSecret.
        self.secret = (s.akool_client_secret or s.akool_api_key).get()
        self.pad: IvPadding = "space" if s.webhook_iv_padding == "space" else "zero"
        self.window = s.webhook_max_skew_seconds
        self.urls = Map(
            [
                Rule("/webhooks/akool", endpoint="delivery", methods=["POST"]),
                Rule("/healthz", endpoint="health", methods=["GET"]),
            ]
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        try:
            endpoint, _ = self.urls.bind_to_environ(environ).match()
            if endpoint == "health":
                response = self.health()
            else:
                response = self.delivery(request)
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

    def delivery(self, request: Request) -> Response:
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return _json(413, error="body too large")
        body = _parse(request.get_data(cache=False)[: MAX_BODY_BYTES + 1])
        if body is None:
            return _json(400, error="body must be a JSON object with " + ", ".join(_FIELDS))
        timestamp, nonce = body["timestamp"], str(body["nonce"])
        if abs(time.time() - int(timestamp) / 1000.0) > self.window:
            return _json(401, error="timestamp outside the accepted window")
        if not verify_signature(
            self.client_id, timestamp, nonce, body["dataEncrypt"], body["signature"]
        ):
            log.warning("webhook signature mismatch")
            return _json(401, error="bad signature")
        try:
            payload = open_delivery(body, self.client_id, self.secret, self.pad)
        except WebhookCryptoError as exc:
            return _json(400, error=str(exc))
        digest = hashlib.sha256(
            f"{nonce}|{int(timestamp)}|{body['signature']}".encode()
        ).hexdigest()
        if self.rt.store.guards.nonce_seen(digest):
            return _json(401, error="nonce already used")
        try:
            return self._apply(payload, request.args.get("job_id"), digest)
        except NonceReplayed:  # the same delivery, stored by a concurrent request
            return _json(401, error="nonce already used")

    def _apply(self, payload: dict[str, Any], job_hint: str | None, nonce: str) -> Response:
        remote_id = payload.get("_id")
        status = payload.get("status")
        if (
            not isinstance(remote_id, str)
            or isinstance(status, bool)
            or not isinstance(status, int)
        ):
            return _json(400, error="payload needs _id (string) and status (integer)")
        job_id = self.rt.store.job_for_remote(remote_id) or (
            self._bind_ambiguous(job_hint, remote_id) if job_hint else None
        )
        if job_id is None:
            log.info("webhook for an unknown task", extra={"remote_id": remote_id})
            self.rt.store.guards.use_nonce(nonce, self.rt.jobs.t.nonce_ttl)
            return _json(200, ok=True, applied=False)
        url = payload.get("url") if isinstance(payload.get("url"), str) else None
        task = Task(
            remote_id=remote_id,
            status=status,
            output_url=url or None,
            error_code=payload.get("error_code")
            if isinstance(payload.get("error_code"), int)
            else None,
            error_reason=payload.get("error_reason")
            if isinstance(payload.get("error_reason"), str)
            else None,
        )
        final = self.rt.jobs.apply_remote_status(job_id, task, source="webhook", nonce=nonce)
        if final:
            # The receiver process does not load the producers' signal receivers: notify
            # where they live, in a worker.
            self.rt.send("headswap.notify", {"job_id": job_id}, queue="headswap.notify")
        else:
            self.rt.store.guards.use_nonce(nonce, self.rt.jobs.t.nonce_ttl)
        log.info(
            "webhook applied", extra={"job_id": job_id, "remote_id": remote_id, "status": status}
        )
        return _json(200, ok=True, applied=True, final=final)

    def _bind_ambiguous(self, job_id: str, remote_id: str) -> str | None:
        """An ambiguous create did happen: record its remote id and follow it."""
        record = self.rt.store.get(job_id)
        if record is not None and record.get("remote_id") == remote_id:
            return job_id  # the create's answer was recorded just after our first lookup
        if record is None or record["state"] != states.SUBMITTING:
            return None
        if not self.rt.jobs.bind_by_webhook(
            job_id, remote_id, self.rt.settings.safety_net_poll_seconds
        ):
            return self.rt.store.job_for_remote(remote_id)
        # A webhook may simply beat the create's answer (normal at short processing times);
        # only a create already marked ambiguous is worth a warning.
        level = logging.WARNING if record.get("ambiguous_at") else logging.INFO
        log.log(
            level,
            "job bound to its task by webhook",
            extra={"job_id": job_id, "remote_id": remote_id},
        )
        return job_id


def _outcome(status: int) -> str:
    return {200: "applied", 400: "bad_request", 401: "refused", 413: "too_large"}.get(
        status, "error"
    )


def _parse(raw: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(body, dict) or any(k not in body for k in _FIELDS):
        return None
    if not isinstance(body["signature"], str) or not isinstance(body["dataEncrypt"], str):
        return None
    ts, nonce = body["timestamp"], body["nonce"]
    if isinstance(ts, bool) or not isinstance(ts, int | str) or isinstance(nonce, bool):
        return None
    if not isinstance(nonce, int | str) or len(str(nonce)) > 128:
        return None
    try:
        int(ts)
    except ValueError:
        return None
    if len(body["signature"]) > 128 or len(body["dataEncrypt"]) > MAX_BODY_BYTES:
        return None
    return body


def create_app(settings: Settings | None = None) -> WebhookApp:
    """WSGI entry point for gunicorn: ``gunicorn 'worker.webhook:create_app()'``."""
    s = settings or get_settings()
    setup_logging(s)
    return WebhookApp(Runtime(s, CeleryDispatcher(sender_app(s, "headswap-webhook"))))


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(host: str, port: int) -> None:
    """``headswap webhook``: a threaded Werkzeug server (put a TLS proxy in front)."""
    import signal

    from werkzeug.serving import make_server

    app = create_app()
    metrics_port = int(os.environ.get("HEADSWAP_METRICS_PORT", "0") or 0)
    start_metrics_server(metrics_port, app.rt.store)
    server = make_server(host, port, app, threaded=True)
    signal.signal(signal.SIGTERM, _stop)
    log.info("webhook receiver listening", extra={"host": host, "port": port})
    print(f"webhook listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
