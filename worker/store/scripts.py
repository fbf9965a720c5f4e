"""The store's Lua scripts, kept as ``.lua`` files beside this module and loaded once
(``create`` and ``transition``, shared with producers, live in ``headswap_client/lua``).

Each file documents its KEYS and ARGV in its header. Every script does all its checks
and decodes before its first write: Redis never rolls a script back, so one that fails
half-way would leave half a change behind.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import redis
from redis.commands.core import Script

NAMES = (
    "update", "claim", "schedule", "release", "circuit",
    "analysis_claim", "analysis_update", "gcra", "breaker", "dead_write", "dead_requeue",
    "misrouted_scan", "misrouted_move", "admit", "ungrant",
)  # fmt: skip


@functools.cache
def source(name: str) -> str:
    """The text of ``lua/<name>.lua``."""
    return (resources.files("worker.store") / "lua" / f"{name}.lua").read_text("utf-8")


class Scripts:
    """Every script registered on one client (EVALSHA, loaded again after a restart)."""

    def __init__(self, client: redis.Redis) -> None:
        self._scripts: dict[str, Script] = {n: client.register_script(source(n)) for n in NAMES}

    def __call__(self, name: str, keys: list[str], args: list[Any], client: Any = None) -> Any:
        """Run ``name``; with ``client`` a pipeline, queue it there (the pipeline's
        ``execute`` answers it)."""
        return self._scripts[name](keys=keys, args=args, client=client)
