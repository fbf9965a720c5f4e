"""A dispatcher that records what would have been sent (unit tests of flows)."""

from __future__ import annotations

from typing import Any


class RecordingDispatcher:
    def __init__(self) -> None:
        #: (name, kwargs, queue) for keyword sends; (name, args, queue) for positional ones
        self.sent: list[tuple[str, Any, str | None]] = []

    def send(self, name: str, kwargs: Any = None, args: Any = (), queue: str | None = None) -> None:
        self.sent.append((name, dict(kwargs) if kwargs is not None and not args else tuple(args),
                          queue))
