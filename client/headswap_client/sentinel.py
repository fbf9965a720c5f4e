"""Redis behind Sentinel: the ``sentinel://`` URL form, broker and store alike."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit


@dataclass(frozen=True)
class SentinelURL:
    """``sentinel://[[user]:password@]host:port[,host:port...][/db]?master=<name>``: the
    one URL form for Redis behind Sentinel, broker and store alike. The password is the
    Redis master's (the sentinels are asked without one)."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None

    def kombu_url(self) -> str:
        """kombu's form: one ``sentinel://`` URL per sentinel, ``;``-separated (the
        master's name goes in the transport options)."""
        auth = ""
        if self.password is not None:
            auth = f"{quote(self.username or '', safe='')}:{quote(self.password, safe='')}@"
        return ";".join(f"sentinel://{auth}{h}:{p}/{self.db}" for h, p in self.sentinels)


def sentinel_of(url: str) -> SentinelURL:
    """Parse a ``sentinel://`` URL; ValueError names what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != "sentinel":
        raise ValueError("not a sentinel:// URL")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    sentinels = []
    for item in hosts.split(","):
        host, _, port = item.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"sentinel address {item!r} must be host:port")
        sentinels.append((host.strip("[]"), int(port)))
    master = parse_qs(parts.query).get("master", [""])[0]
    if not master:
        raise ValueError("a sentinel:// URL needs ?master=<name of the monitored master>")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"database {path!r} must be a number")
    username = password = None
    if userinfo:
        user, sep, secret = userinfo.partition(":")
        username, password = (unquote(user) or None, unquote(secret)) if sep else (
            None, unquote(user))  # fmt: skip
    return SentinelURL(tuple(sentinels), master, int(path or 0), username, password)
