"""One delivery attempt of a job's HTTP callback (the ``headswap.deliver_callback`` task).

1. the URL's host is resolved once; if any address is refused
   (:mod:`worker.callbacks.addresses`), nothing is sent and the callback is dead-lettered
   ``blocked_address``;
2. the connection goes to the checked address itself (:mod:`worker.callbacks.transport`);
3. ``POST`` of the JSON record, signed the Standard Webhooks way with every secret of
   ``HEADSWAP_CALLBACK_SECRETS`` (:mod:`headswap_client.signing`), redirects not
   followed.

Any 2xx is delivered; 408, 429, 5xx, connection errors and timeouts are retried with the
project's one backoff (:func:`worker.timing.retry_delay`, never before ``Retry-After``,
capped) up to ``HEADSWAP_CALLBACK_MAX_ATTEMPTS``; any other answer (3xx, other 4xx) is
permanent. A retry is data in Redis: the job joins the ``callback`` schedule at the
retry time (server clock, in the same step as the bookkeeping) and beat's poll tick
sends the next attempt — the one retry layer, and no Celery countdown, whose ETA is set on
the sender's clock and awaited on the consumer's.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import requests
from headswap_client import states
from headswap_client.signing import HEADER_ATTEMPT, event_id, headers_for, parse_secret

from config.settings import redact_url
from worker import metrics, tracing
from worker.callbacks.addresses import BlockedAddress, Resolver, parse_networks, resolve_checked
from worker.callbacks.dead_letters import (
    BLOCKED_ADDRESS,
    DELIVERED,
    EXHAUSTED,
    FAILED,
    INVALID_URL,
    NO_SECRET,
    PENDING,
    PERMANENT_STATUS,
    Outcome,
    attempts_of,
    bookkeep,
    count_attempt,
    dead,
)
from worker.callbacks.transport import Target, parse_target, shared_session
from worker.jobs import public_record
from worker.timing import parse_retry_after, retry_delay

if TYPE_CHECKING:
    from worker.runtime import Runtime

log = logging.getLogger(__name__)

TASK_NAME = "headswap.deliver_callback"


def callback_body(record: Mapping[str, Any]) -> bytes:
    """The POSTed JSON: the record producers see (the same as the callback task's)."""
    view = public_record(dict(record))
    view.pop("notified_at", None)
    return json.dumps(view, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def classify_status(status: int) -> str:
    """``delivered`` | ``retry`` | ``permanent`` for an HTTP status of the receiver."""
    if 200 <= status < 300:
        return "delivered"
    if status in (408, 429) or status >= 500:
        return "retry"
    return "permanent"  # redirects (not followed) and other 4xx


def deliver(
    rt: Runtime,
    job_id: str,
    *,
    session: requests.Session | None = None,
    resolver: Resolver = socket.getaddrinfo,
    rng: random.Random | None = None,
) -> Outcome:
    """One delivery attempt of a job's callback. Never raises for HTTP or DNS trouble."""
    outcome = _deliver(rt, job_id, session=session, resolver=resolver, rng=rng)
    metrics.observe_callback(outcome.status, outcome.reason)
    return outcome


def _deliver(
    rt: Runtime,
    job_id: str,
    *,
    session: requests.Session | None,
    resolver: Resolver,
    rng: random.Random | None,
) -> Outcome:
    s = rt.settings
    store = rt.store
    record = store.get(job_id)
    if record is None or not record.get("callback_url"):
        rt.store.unschedule("callback", job_id)
        return Outcome("skipped", reason="no_job_or_url")
    if record["state"] not in states.TERMINAL:
        return Outcome("skipped", reason="not_terminal")
    if record.get("callback_status") in (DELIVERED, FAILED):
        rt.store.unschedule("callback", job_id)
        return Outcome("skipped", reason="done")
    url = str(record["callback_url"])
    info = {"job_id": job_id, "callback_url": redact_url(url)}

    keys = [parse_secret(secret.get()) for secret in s.callback_secrets]
    if not keys:
        log.error(
            "callback not sent: HEADSWAP_CALLBACK_SECRETS is not set (callbacks are always "
            "signed, Standard Webhooks: whsec_<base64>); dead-lettered",
            extra=info,
        )
        return dead(rt, record, NO_SECRET, attempts=attempts_of(record))
    try:
        target = parse_target(url)
    except ValueError:
        return dead(rt, record, INVALID_URL, attempts=attempts_of(record))

    token = store.guards.lock("callback", job_id, s.longest_callback_seconds)
    if token is None:
        # Another run of this job's delivery is under way; it carries on the chain.
        return Outcome("skipped", reason="in_progress")
    try:
        with tracing.job_span("headswap.callback", record.get(tracing.RECORD_FIELD),
                              job_id=job_id) as span:  # fmt: skip
            outcome = _attempt(rt, record, target, keys, info, session, resolver, rng)
            tracing.set_attributes(span, outcome=outcome.status, reason=outcome.reason,
                                   http_status=outcome.http_status)  # fmt: skip
            return outcome
    finally:
        store.guards.unlock("callback", job_id, token)


def _attempt(
    rt: Runtime,
    record: Mapping[str, Any],
    target: Target,
    keys: list[bytes],
    info: dict[str, Any],
    session: requests.Session | None,
    resolver: Resolver,
    rng: random.Random | None,
) -> Outcome:
    s = rt.settings
    job_id = str(record["job_id"])
    allowed = parse_networks(s.callback_allowed_networks)
    try:
        ip = resolve_checked(target.host, target.port, allowed, resolver)
    except BlockedAddress as exc:
        log.warning("callback refused: address not allowed", extra={**info, "detail": str(exc)})
        return dead(rt, record, BLOCKED_ADDRESS, attempts=attempts_of(record), error=str(exc))
    except (OSError, UnicodeError, ValueError) as exc:
        attempt = count_attempt(rt, job_id)
        if attempt == 0:
            return Outcome("skipped", reason="job_expired")
        return _failed_attempt(rt, record, attempt, None, f"dns: {type(exc).__name__}", None, rng)

    attempt = count_attempt(rt, job_id)
    if attempt == 0:
        return Outcome("skipped", reason="job_expired")
    tracing.annotate(attempt=attempt)
    body = callback_body(record)
    timestamp = int(time.time())
    headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        **headers_for(keys, event_id(job_id, str(record["state"])), timestamp, body),
        HEADER_ATTEMPT: str(attempt),
    }
    tracing.inject(headers)  # traceparent: the producer's handler continues the job's trace
    http = session or shared_session()
    started = time.monotonic()
    try:
        response = http.post(
            target.pinned_url(ip),
            data=body,
            headers=headers,
            auth=target.auth,
            timeout=(s.callback_connect_timeout, s.callback_read_timeout),
            allow_redirects=False,
            stream=True,  # the answer's body is never read
        )
    except requests.RequestException as exc:
        return _failed_attempt(rt, record, attempt, None, type(exc).__name__, None, rng)
    status = response.status_code
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    response.close()
    elapsed = round(time.monotonic() - started, 3)
    verdict = classify_status(status)
    if verdict == "delivered":
        bookkeep(rt, job_id, {
            "callback_status": DELIVERED, "callback_attempts": attempt,
            "callback_last_status": status, "callback_delivered_at": repr(time.time()),
            "callback_error": "",
        })  # fmt: skip
        rt.store.unschedule("callback", job_id)
        log.info(
            "callback delivered",
            extra={**info, "attempt": attempt, "http_status": status, "seconds": elapsed},
        )
        return Outcome("delivered", http_status=status)
    if verdict == "permanent":
        log.warning(
            "callback refused by the receiver; not retried",
            extra={**info, "attempt": attempt, "http_status": status},
        )
        return dead(rt, record, PERMANENT_STATUS, attempts=attempt, status=status)
    return _failed_attempt(rt, record, attempt, status, f"http {status}", retry_after, rng)


def _failed_attempt(
    rt: Runtime,
    record: Mapping[str, Any],
    attempt: int,
    status: int | None,
    error: str,
    retry_after: float | None,
    rng: random.Random | None,
) -> Outcome:
    s = rt.settings
    job_id = str(record["job_id"])
    info = {"job_id": job_id, "callback_url": redact_url(str(record["callback_url"]))}
    if attempt >= s.callback_max_attempts:
        log.warning(
            "callback failed on its last attempt; dead-lettered",
            extra={**info, "attempt": attempt, "http_status": status, "error": error},
        )
        return dead(rt, record, EXHAUSTED, attempts=attempt, status=status, error=error)
    cap = s.callback_backoff_max_seconds
    delay = retry_delay(attempt, base=s.callback_backoff_base_seconds, cap=cap,
                        retry_after=retry_after, retry_after_cap=cap, rng=rng)  # fmt: skip
    fields: dict[str, Any] = {"callback_status": PENDING, "callback_error": error}
    if status is not None:
        fields["callback_last_status"] = status
    bookkeep(rt, job_id, fields, retry_in=delay)
    log.info(
        "callback attempt failed; retrying",
        extra={**info, "attempt": attempt, "http_status": status, "error": error,
               "retry_in": round(delay, 3)},
    )  # fmt: skip
    return Outcome("retry", retry_in=delay, http_status=status)
