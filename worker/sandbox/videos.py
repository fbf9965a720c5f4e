"""Deterministic per-URL behaviour, steered through the source video URL.

The sandbox never downloads anything. What a "video" contains is read from its URL:

- ``?persons=N``   number of people the analysis finds (default 1, clamped to 0..20)
- ``?duration=S``  length in seconds (default: from a hash of the URL, in [3.0, 20.0])
- ``sandbox-analysis-fail`` anywhere in the URL: the analysis ends in status 4 (1015)
- ``sandbox-fail`` anywhere in the URL: every task for it ends in status 4 (1016)

A duration outside [3, 20] makes the analysis end in status 4 with code 1204.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

MIN_DURATION = 3.0
MAX_DURATION = 20.0
MAX_PERSONS = 20
FPS = 30
WIDTH, HEIGHT = 1280, 720


@dataclass(frozen=True)
class VideoProfile:
    """What the sandbox pretends a source video is."""

    persons: int
    duration: float
    analysis_fails: bool
    task_fails: bool

    @property
    def duration_ok(self) -> bool:
        """True when the duration is inside the accepted [3, 20] seconds."""
        return MIN_DURATION <= self.duration <= MAX_DURATION

    def video_info(self) -> dict[str, int]:
        """The ``analysis_result.video_info`` object."""
        return {
            "width": WIDTH,
            "height": HEIGHT,
            "fps": FPS,
            "frame_count": round(self.duration * FPS),
        }


def hashed_duration(url: str) -> float:
    """A stable duration in [3.0, 20.0] (one decimal) derived from the URL string."""
    digest = int.from_bytes(hashlib.sha256(url.encode("utf-8")).digest()[:8], "big")
    return MIN_DURATION + (digest % 171) / 10.0


def _query_value(url: str, name: str) -> str | None:
    values = parse_qs(urlsplit(url).query).get(name)
    return values[-1] if values else None


def _persons(url: str) -> int:
    raw = _query_value(url, "persons")
    try:
        count = int(raw) if raw is not None else 1
    except ValueError:
        return 1
    return max(0, min(MAX_PERSONS, count))


def _duration(url: str) -> float:
    raw = _query_value(url, "duration")
    if raw is not None:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return round(value, 3)
    return hashed_duration(url)


def profile(url: str) -> VideoProfile:
    """Read the profile of a source video from its URL (pure and deterministic)."""
    return VideoProfile(
        persons=_persons(url),
        duration=_duration(url),
        analysis_fails="sandbox-analysis-fail" in url,
        task_fails="sandbox-fail" in url,
    )
