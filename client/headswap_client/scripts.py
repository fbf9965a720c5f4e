"""The Lua scripts producers and workers share (``lua/create.lua``, ``lua/transition.lua``),
loaded once per client. Each file documents its KEYS and ARGV in its header; every one
does all its checks and decodes before its first write."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import redis
from redis.commands.core import Script

NAMES = ("create", "transition")


@functools.cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua``."""
    return (resources.files("headswap_client") / "lua" / f"{name}.lua").read_text("utf-8")


class SharedScripts:
    """The shared scripts registered on one client (EVALSHA, loaded again after a restart)."""

    def __init__(self, client: redis.Redis) -> None:
        self._scripts: dict[str, Script] = {n: client.register_script(source(n)) for n in NAMES}

    def __call__(self, name: str, keys: list[str], args: list[Any], client: Any = None) -> Any:
        """Run ``name``; with ``client`` a pipeline, queue it there."""
        return self._scripts[name](keys=keys, args=args, client=client)
