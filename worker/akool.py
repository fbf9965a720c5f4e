"""The Akool Open API client (head swap v4). The only module that imports ``requests``.

One :class:`AkoolClient` per process: one ``requests.Session`` with a pool sized by
settings, connect and read timeouts on every call, and no retry loop — retry policy
belongs to the Celery tasks. Every failure leaves here as an :mod:`worker.errors`
class, translated at this boundary (``raise ... from exc``).

Auth: ``x-api-key`` when an API key is configured; otherwise a bearer token from
``getToken`` (client id + secret), fetched once, cached, and refreshed once when a call
answers 1101.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from config.settings import Settings
from worker import classify, metrics
from worker.akool_types import Analysis, CreateTaskRequest, MalformedResponse, Task
from worker.errors import (
    AkoolAmbiguous,
    AkoolAuthError,
    AkoolError,
    AkoolRetryable,
    ConfigError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

PATH_TOKEN = "/api/open/v3/getToken"  # noqa: S105 (a path, not a secret)
PATH_ANALYZE = "/api/open/v4/headswap/analyze"
PATH_ANALYZE_DETAIL = "/api/open/v4/headswap/analyze/detail"
PATH_CREATE = "/api/open/v4/headswap/task/create"
PATH_TASK_DETAIL = "/api/open/v4/headswap/task/detail"

_NOT_SENT_CAUSES = (NewConnectionError, NameResolutionError, ConnectTimeoutError)


class AkoolClient:
    """Typed calls to the four head-swap endpoints and getToken."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str = "",
        client_id: str = "",
        client_secret: str = "",
        connect_timeout: float = 3.05,
        read_timeout: float = 30.0,
        pool_size: int = 16,
        user_agent: str = "headswap-worker/0.1",
    ) -> None:
        if not api_key and not (client_id and client_secret):
            raise ConfigError(
                "Akool auth is not configured: set HEADSWAP_AKOOL_API_KEY, or "
                "HEADSWAP_AKOOL_CLIENT_ID and HEADSWAP_AKOOL_CLIENT_SECRET"
            )
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._client_id = client_id
        self._client_secret = client_secret
        self._timeout = (connect_timeout, read_timeout)
        self._token: str | None = None
        self._token_lock = threading.Lock()
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update({"User-Agent": user_agent, "Accept": "application/json"})
        # Read proxy and CA settings from the environment once, not on every call.
        self._session.proxies.update(requests.utils.get_environ_proxies(self.base_url))
        self._session.verify = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        )
        self._session.trust_env = False

    @classmethod
    def from_settings(cls, settings: Settings) -> AkoolClient:
        return cls(
            settings.akool_base_url,
            api_key=settings.akool_api_key.get(),
            client_id=settings.akool_client_id,
            client_secret=settings.akool_client_secret.get(),
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            pool_size=settings.akool_pool_size,
        )

    def __repr__(self) -> str:
        auth = "api-key" if self._api_key else "token"
        return f"AkoolClient(base_url={self.base_url!r}, auth={auth})"

    def close(self) -> None:
        self._session.close()

    # --- the API ------------------------------------------------------------------------

    def analyze(self, source_video_url: str) -> Analysis:
        """Start person detection on a source video. Safe to repeat (costs no task)."""
        data = self._call(
            "POST", PATH_ANALYZE, "analyze", json={"video_url": source_video_url, "type": "head"}
        )
        return self._parse(Analysis.from_data, data, "analyze", unsafe=False)

    def analysis_detail(self, analysis_id: str) -> Analysis:
        data = self._call(
            "GET", PATH_ANALYZE_DETAIL, "analysis_detail", params={"_id": analysis_id}
        )
        return self._parse(Analysis.from_data, data, "analysis_detail", unsafe=False)

    def create_task(self, request: CreateTaskRequest) -> Task:
        """Create a head-swap task. Costs credits: a maybe-executed call raises AkoolAmbiguous."""
        data = self._call("POST", PATH_CREATE, "create", json=request.to_body(), unsafe=True)
        return self._parse(Task.from_data, data, "create", unsafe=True)

    def task_detail(self, remote_id: str) -> Task:
        data = self._call("GET", PATH_TASK_DETAIL, "task_detail", params={"_id": remote_id})
        return self._parse(Task.from_data, data, "task_detail", unsafe=False)

    def get_token(self) -> str:
        """Exchange client id + secret for a bearer token (the envelope has no ``data``)."""
        body = self._send(
            "POST",
            PATH_TOKEN,
            "get_token",
            json={"clientId": self._client_id, "clientSecret": self._client_secret},
            auth=False,
        )
        token = body.get("token")
        if not isinstance(token, str) or not token:
            raise AkoolAuthError("getToken answered without a token", operation="get_token")
        return token

    # --- plumbing -----------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        unsafe: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Send an authenticated call; refresh the bearer token once on 1101."""
        headers = self._auth_headers()
        try:
            body = self._send(method, path, operation, unsafe=unsafe, headers=headers, **kwargs)
        except AkoolAuthError as exc:
            if not self._uses_token or exc.code != classify.CODE_TOKEN_INVALID:
                raise
            log.info("akool token rejected; refreshing once", extra={"operation": operation})
            self._refresh_token(rejected=headers)
            body = self._send(method, path, operation, unsafe=unsafe,
                              headers=self._auth_headers(), **kwargs)  # fmt: skip
        data = body.get("data")
        return data if isinstance(data, dict) else {}

    @property
    def _uses_token(self) -> bool:
        return not self._api_key

    def _auth_headers(self) -> dict[str, str]:
        if self._api_key:
            return {"x-api-key": self._api_key}
        with self._token_lock:
            if self._token is None:
                self._token = self.get_token()
            return {"Authorization": f"Bearer {self._token}"}

    def _refresh_token(self, rejected: dict[str, str]) -> None:
        """A new token, unless another thread already replaced the rejected one (the
        poller's threads all meet the same revoked token: one getToken, not one each)."""
        with self._token_lock:
            if rejected.get("Authorization") == f"Bearer {self._token}":
                self._token = self.get_token()

    def _send(
        self,
        method: str,
        path: str,
        operation: str,
        *,
        unsafe: bool = False,
        auth: bool = True,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        if headers is None:
            headers = self._auth_headers() if auth else {}
        started = time.perf_counter()
        result = "ok"
        try:
            return self._exchange(method, path, operation, headers, unsafe, kwargs)
        except AkoolError as exc:
            result = (
                str(exc.code)
                if exc.code is not None
                else (f"http_{exc.http_status}" if exc.http_status else type(exc).__name__)
            )
            raise
        finally:
            metrics.observe_call(operation, result, time.perf_counter() - started)

    def _exchange(
        self,
        method: str,
        path: str,
        operation: str,
        headers: dict[str, str],
        unsafe: bool,
        kwargs: dict[str, Any],
    ) -> dict[str, Any]:
        try:
            response = self._session.request(
                method, self.base_url + path, headers=headers, timeout=self._timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise _transport_error(exc, unsafe=unsafe, operation=operation) from exc
        with response:
            http_error = classify.for_http_status(
                response.status_code, response.headers, unsafe=unsafe, operation=operation
            )
            if http_error is not None:
                raise http_error
            try:
                body = response.json()
            except ValueError as exc:
                raise _uncertain(
                    "Akool answered 200 without a JSON body", unsafe, operation
                ) from exc
        if not isinstance(body, dict) or not isinstance(body.get("code"), int):
            raise _uncertain("Akool answered without an envelope code", unsafe, operation)
        msg = body.get("msg")
        error = classify.for_code(
            body["code"], msg if isinstance(msg, str) else None, unsafe=unsafe, operation=operation
        )
        if error is not None:
            raise error
        return body

    @staticmethod
    def _parse(
        parser: Callable[[dict[str, Any]], T], data: dict[str, Any], operation: str, *, unsafe: bool
    ) -> T:
        try:
            return parser(data)
        except MalformedResponse as exc:
            raise _uncertain(f"malformed success response: {exc}", unsafe, operation) from exc


def _uncertain(message: str, unsafe: bool, operation: str) -> AkoolError:
    """The server answered something we cannot read: on a create, it may have executed."""
    if unsafe:
        return AkoolAmbiguous(message, operation=operation)
    return AkoolRetryable(message, operation=operation)


def _transport_error(exc: requests.RequestException, *, unsafe: bool, operation: str) -> AkoolError:
    """Map a requests exception: was the request surely not sent, or may it have run?
    Either way Akool did not answer (``unreachable``)."""
    error = _transport_error_kind(exc, unsafe=unsafe, operation=operation)
    error.unreachable = True
    return error


def _transport_error_kind(exc: requests.RequestException, *, unsafe: bool,
                          operation: str) -> AkoolError:  # fmt: skip
    if isinstance(exc, requests.ConnectTimeout):
        return AkoolRetryable("connect timeout to Akool", operation=operation)
    if isinstance(exc, requests.ConnectionError) and _never_sent(exc):
        return AkoolRetryable("could not connect to Akool", operation=operation)
    if isinstance(exc, requests.ReadTimeout):
        return _uncertain("read timeout waiting for Akool", unsafe, operation)
    # Connection reset/aborted after sending, chunked-encoding errors, etc.
    return _uncertain(f"connection to Akool broke: {type(exc).__name__}", unsafe, operation)


def _never_sent(exc: requests.ConnectionError) -> bool:
    cause: BaseException | None = exc.args[0] if exc.args else None
    reason = getattr(cause, "reason", cause)
    return isinstance(reason, _NOT_SENT_CAUSES)
