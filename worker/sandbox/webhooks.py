"""Webhook delivery: seal the payload as Akool does and POST it from a small thread pool.

The engine decides *what* and *when* (its scheduler fires at the task's final state and
at each retry); this module only seals and sends, then reports the HTTP status back.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import requests

from worker.webhook_crypto import seal

log = logging.getLogger(__name__)

USER_AGENT = "akool-sandbox-webhook/1"
CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True)
class Outbound:
    """One delivery attempt to make."""

    url: str
    payload: dict[str, object]
    keys: tuple[str, str]
    timeout: float


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Delay before attempt ``attempt + 1``: ``base * 2**(attempt-1)``, at most ``cap``."""
    return float(min(cap, base * (2 ** max(0, attempt - 1))))


def sealed_body(payload: dict[str, object], keys: tuple[str, str]) -> dict[str, object]:
    """``{"signature","dataEncrypt","timestamp","nonce"}`` with a fresh timestamp and nonce."""
    client_id, secret = keys
    delivery = seal(
        payload,
        client_id,
        secret,
        timestamp=int(time.time() * 1000),
        nonce=str(secrets.randbelow(1_000_000)),
        pad="strict",
    )
    return delivery.to_json()


class WebhookCourier:
    """Posts deliveries on a thread pool, one ``requests.Session`` per pool thread."""

    def __init__(self, workers: int = 8) -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox-webhook")
        self._local = threading.local()

    def send(self, outbound: Outbound, on_done: Callable[[int | None], None]) -> None:
        """Deliver in the background; ``on_done`` gets the HTTP status (None: no answer)."""
        try:
            self._pool.submit(self._deliver_and_report, outbound, on_done)
        except RuntimeError:  # pool shut down during exit
            log.debug("webhook pool closed; delivery dropped")

    def close(self) -> None:
        """Stop accepting work and drop queued deliveries."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
            self._local.session = session
        return session

    def _deliver(self, outbound: Outbound) -> int | None:
        body = sealed_body(outbound.payload, outbound.keys)
        try:
            response = self._session().post(
                outbound.url,
                json=body,
                timeout=(min(CONNECT_TIMEOUT, outbound.timeout), outbound.timeout),
            )
        except requests.RequestException as exc:
            log.info("webhook to %s failed: %s", outbound.url, type(exc).__name__)
            return None
        response.close()
        return response.status_code

    def _deliver_and_report(
        self, outbound: Outbound, on_done: Callable[[int | None], None]
    ) -> None:
        status: int | None = None
        try:
            status = self._deliver(outbound)
        except Exception:
            log.exception("webhook delivery crashed")
        on_done(status)
