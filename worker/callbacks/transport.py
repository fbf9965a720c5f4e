"""The HTTP side of a callback: the URL split for a pinned connection, and one pooled
session whose adapter connects to the checked address while naming the URL's host.

The connection goes to the address :mod:`worker.callbacks.addresses` checked (the URL's
host travels in the ``Host`` header and as TLS SNI / certificate name), so a DNS answer
that changes between check and connect (rebinding) cannot redirect the request.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from worker.callbacks.addresses import IPAddress

if TYPE_CHECKING:
    from requests.adapters import _HostParams, _PoolKwargs

USER_AGENT = "headswap-callbacks/1"


@dataclass(frozen=True)
class Target:
    """A callback URL, split for a pinned connection."""

    scheme: str
    host: str  # ASCII (IDNA) host name or IP literal, no brackets
    port: int
    path: str  # path and query
    auth: tuple[str, str] | None

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    def pinned_url(self, ip: IPAddress) -> str:
        netloc = f"[{ip}]:{self.port}" if ip.version == 6 else f"{ip}:{self.port}"
        return f"{self.scheme}://{netloc}{self.path}"


def parse_target(url: str) -> Target:
    """Raises ValueError for anything but an http(s) URL with a host."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL with a host")
    port = parts.port or (443 if scheme == "https" else 80)  # ValueError for a bad port
    try:
        host = parts.hostname.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError("host name is not valid") from exc
    path = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    auth = None
    if parts.username is not None:
        auth = (unquote(parts.username), unquote(parts.password or ""))
    return Target(scheme, host, port, path, auth)


class PinnedHostAdapter(HTTPAdapter):
    """Connects to the IP in the URL while naming the host of the ``Host`` header.

    The caller puts the checked IP in the URL and the real host in ``Host``; for HTTPS
    this adapter makes the host the TLS SNI name and the certificate name checked, so
    verification is against the name, the connection against the checked address.
    """

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[_HostParams, _PoolKwargs]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        host_header = request.headers.get("Host")
        if host_header and host_params["scheme"] == "https":
            name = urlsplit(f"//{host_header}").hostname
            if name:
                extra = cast(dict[str, Any], pool_kwargs)  # urllib3 pool key fields
                extra["server_hostname"] = name
                extra["assert_hostname"] = name
        return host_params, pool_kwargs


_session: requests.Session | None = None
_session_lock = threading.Lock()


def shared_session() -> requests.Session:
    """One small pooled session per process, with no proxies or netrc from the env, and
    no retries of its own (the delivery task is the one retry layer)."""
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                session = requests.Session()
                session.trust_env = False
                adapter = PinnedHostAdapter(pool_connections=8, pool_maxsize=8, max_retries=0)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                session.headers["User-Agent"] = USER_AGENT
                _session = session
    return _session
