"""The sandbox's knobs: one immutable :class:`Knobs` value, validated in one place.

Every knob can be set as a CLI flag (``--processing-time 1,3``) and through
``POST /_sandbox/config`` (``{"processing_time": [1, 3]}``); both paths go through the same
coercion functions in :data:`SPECS`, so they accept and refuse the same values.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Span = tuple[float, float]
"""A duration in seconds drawn uniformly from ``[min, max]`` (equal ends: a fixed value)."""

TOKEN_TTL_DEFAULT = 400 * 86400.0  # "more than a year" (unknown #11)


class KnobError(ValueError):
    """A knob value (or name) is not acceptable. The message names the knob."""


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise KnobError(f"{name}: expected a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise KnobError(f"{name}: must be finite")
    return number


def _non_negative(name: str, value: object) -> float:
    number = _number(name, value)
    if number < 0:
        raise KnobError(f"{name}: must be >= 0, got {number}")
    return number


def _positive(name: str, value: object) -> float:
    number = _number(name, value)
    if number <= 0:
        raise KnobError(f"{name}: must be > 0, got {number}")
    return number


def _ratio(name: str, value: object) -> float:
    number = _number(name, value)
    if not 0.0 <= number <= 1.0:
        raise KnobError(f"{name}: must be between 0 and 1, got {number}")
    return number


def _span(name: str, value: object) -> Span:
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise KnobError(f"{name}: a range must be [min, max]")
        low, high = _non_negative(name, value[0]), _non_negative(name, value[1])
        if low > high:
            raise KnobError(f"{name}: min {low} is greater than max {high}")
        return (low, high)
    number = _non_negative(name, value)
    return (number, number)


def _count(name: str, value: object, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise KnobError(f"{name}: expected an integer, got {value!r}")
    if isinstance(value, float) and not value.is_integer():
        raise KnobError(f"{name}: expected an integer, got {value!r}")
    if int(value) < minimum:
        raise KnobError(f"{name}: must be >= {minimum}, got {int(value)}")
    return int(value)


def _optional_count(name: str, value: object) -> int | None:
    return None if value is None else _count(name, value)


def _expired_status(name: str, value: object) -> int:
    status = _count(name, value)
    if status not in (403, 410):
        raise KnobError(f"{name}: must be 403 or 410, got {status}")
    return status


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise KnobError(f"{name}: expected true or false, got {value!r}")
    return value


def _models(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not value:
        raise KnobError(f"{name}: expected a non-empty list of model names")
    if not all(isinstance(item, str) and item for item in value):
        raise KnobError(f"{name}: every model name must be a non-empty string")
    return tuple(str(item) for item in value)


# -- text forms (CLI) ------------------------------------------------------------------------


def _text_number(text: str) -> object:
    return float(text)


def _text_int(text: str) -> object:
    return int(text)


def _text_optional_int(text: str) -> object:
    return None if text.strip().lower() in {"none", "null", "unlimited", ""} else int(text)


def _text_span(text: str) -> object:
    parts = text.replace(":", ",").split(",")
    if len(parts) == 1:
        return float(parts[0])
    return [float(part) for part in parts]


def _text_list(text: str) -> object:
    return [part.strip() for part in text.split(",") if part.strip()]


def _text_bool(text: str) -> object:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"not a boolean: {text!r}")


@dataclass(frozen=True)
class KnobSpec:
    """How one knob is parsed (from JSON and from CLI text) and described."""

    name: str
    coerce: Callable[[str, object], Any]
    from_text: Callable[[str], object]
    help: str

    def parse_text(self, text: str) -> Any:
        """Parse a CLI value and validate it; raises :class:`ValueError` on bad input."""
        return self.coerce(self.name, self.from_text(text))


def _spec(
    name: str,
    coerce: Callable[[str, object], Any],
    from_text: Callable[[str], object],
    help_text: str,
) -> KnobSpec:
    return KnobSpec(name, coerce, from_text, help_text)


SPECS: dict[str, KnobSpec] = {
    s.name: s
    for s in (
        _spec(
            "processing_time",
            _span,
            _text_span,
            "seconds from create to the final state: N or MIN,MAX (default 2)",
        ),
        _spec(
            "processing_per_video_second",
            _non_negative,
            _text_number,
            "seconds of processing per second of source video, added to processing_time: "
            "a spread that follows the videos' durations, as Akool's does (default 0)",
        ),
        _spec(
            "analysis_time",
            _span,
            _text_span,
            "seconds from analyze to its final state: N or MIN,MAX (default 0.5)",
        ),
        _spec("latency", _span, _text_span, "seconds added to every API request (default 0)"),
        _spec("fail_ratio", _ratio, _text_number, "fraction of tasks that end in status 4"),
        _spec(
            "http_5xx_ratio",
            _ratio,
            _text_number,
            "fraction of API requests answered HTTP 500 without being executed",
        ),
        _spec(
            "http_5xx_after_ratio",
            _ratio,
            _text_number,
            "fraction of create requests executed and then answered HTTP 502",
        ),
        _spec("burst_429", _count, _text_int, "the next N API requests get HTTP 429"),
        _spec(
            "burst_429_every",
            _non_negative,
            _text_number,
            "every S seconds, arm a burst of burst_429_size 429s (0 = off)",
        ),
        _spec(
            "burst_429_size",
            lambda n, v: _count(n, v, 1),
            _text_int,
            "size of each periodic 429 burst (default 3)",
        ),
        _spec(
            "retry_after",
            _non_negative,
            _text_number,
            "Retry-After seconds sent with 429 (default 1)",
        ),
        _spec(
            "hang_ratio",
            _ratio,
            _text_number,
            "fraction of API requests executed, then held for hang_seconds before answering",
        ),
        _spec("hang_seconds", _non_negative, _text_number, "how long a hang lasts (default 60)"),
        _spec(
            "credits",
            _optional_count,
            _text_optional_int,
            "credit balance; 'unlimited' (default) or an integer",
        ),
        _spec("credits_per_task", _count, _text_int, "credits one create costs (default 1)"),
        _spec(
            "max_concurrent",
            _optional_count,
            _text_optional_int,
            "max tasks in status 1 or 2; beyond it create answers 1005 (default unlimited)",
        ),
        _spec("webhooks", _flag, _text_bool, "deliver webhooks (default on)"),
        _spec(
            "webhook_max_attempts",
            lambda n, v: _count(n, v, 1),
            _text_int,
            "delivery attempts per webhook (default 8)",
        ),
        _spec(
            "webhook_backoff",
            _non_negative,
            _text_number,
            "first retry delay in seconds, doubling per attempt (default 0.5)",
        ),
        _spec(
            "webhook_backoff_cap",
            _non_negative,
            _text_number,
            "largest retry delay in seconds (default 10)",
        ),
        _spec(
            "webhook_timeout",
            _positive,
            _text_number,
            "read timeout of one delivery POST in seconds (default 5)",
        ),
        _spec(
            "require_analysis",
            _flag,
            _text_bool,
            "create needs a completed analysis of the identical video_url (default on)",
        ),
        _spec(
            "allowed_models",
            _models,
            _text_list,
            "comma-separated model names the account may use (default akool-premium)",
        ),
        _spec("output_latency", _span, _text_span,
              "seconds before an output download's first byte: N or MIN,MAX (default 0)"),
        _spec("output_rate", _non_negative, _text_number,
              "output download throughput in bytes per second (0 = unlimited)"),
        _spec("output_size", _count, _text_int,
              "pad every output MP4 to this many bytes (0 = the natural ~9 KB)"),
        _spec("output_cuts", _count, _text_int,
              "the next N output downloads are cut after output_cut_after bytes"),
        _spec("output_cut_after", _count, _text_int,
              "bytes sent before a cut download's connection drops (default 4096)"),
        _spec("output_5xx", _count, _text_int, "the next N output downloads get HTTP 503"),
        _spec("output_expiry", _non_negative, _text_number,
              "an output URL expires this many seconds after its task completed (0 = never)"),
        _spec("output_expired_status", _expired_status, _text_int,
              "what an expired output URL answers: 403 (default) or 410"),
        _spec(
            "token_ttl",
            _positive,
            _text_number,
            "token lifetime in seconds, applied at use time (default 400 days)",
        ),
    )
}


@dataclass(frozen=True)
class Knobs:
    """All knobs at one moment. Immutable: an update makes a new value (swap under a lock)."""

    processing_time: Span = (2.0, 2.0)
    processing_per_video_second: float = 0.0
    analysis_time: Span = (0.5, 0.5)
    latency: Span = (0.0, 0.0)
    fail_ratio: float = 0.0
    http_5xx_ratio: float = 0.0
    http_5xx_after_ratio: float = 0.0
    burst_429: int = 0
    burst_429_every: float = 0.0
    burst_429_size: int = 3
    retry_after: float = 1.0
    hang_ratio: float = 0.0
    hang_seconds: float = 60.0
    credits: int | None = None
    credits_per_task: int = 1
    max_concurrent: int | None = None
    webhooks: bool = True
    webhook_max_attempts: int = 8
    webhook_backoff: float = 0.5
    webhook_backoff_cap: float = 10.0
    webhook_timeout: float = 5.0
    require_analysis: bool = True
    allowed_models: tuple[str, ...] = ("akool-premium",)
    token_ttl: float = TOKEN_TTL_DEFAULT
    output_latency: Span = (0.0, 0.0)
    output_rate: float = 0.0
    output_size: int = 0
    output_cuts: int = 0
    output_cut_after: int = 4096
    output_5xx: int = 0
    output_expiry: float = 0.0
    output_expired_status: int = 403

    def updated(self, changes: Mapping[str, object]) -> Knobs:
        """A copy with ``changes`` applied; all are validated first (a bad one changes nothing)."""
        unknown = sorted(set(changes) - set(SPECS))
        if unknown:
            raise KnobError(f"unknown knob(s): {', '.join(unknown)}")
        coerced: dict[str, Any] = {
            name: SPECS[name].coerce(name, value) for name, value in changes.items()
        }
        return dataclasses.replace(self, **coerced)

    def to_json(self) -> dict[str, object]:
        """JSON form: a span with equal ends becomes a number, else ``[min, max]``."""
        out: dict[str, object] = {}
        for name in SPECS:
            value = getattr(self, name)
            if name in {"processing_time", "analysis_time", "latency", "output_latency"}:
                value = value[0] if value[0] == value[1] else [value[0], value[1]]
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out
