"""Counters behind ``GET /_sandbox/stats``. Not locked: the engine's lock guards them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

ROUTE_COUNTERS = {
    "token": "token_calls",
    "analyze": "analyze_calls",
    "analysis_detail": "analysis_detail_calls",
    "create": "create_requests",
    "task_detail": "detail_calls",
}


@dataclass
class Stats:
    """Every counter the sandbox keeps. Updates are O(1); the snapshot is O(keys)."""

    calls: Counter[str] = field(default_factory=Counter)
    creates: int = 0
    creates_by_fingerprint: Counter[str] = field(default_factory=Counter)
    creates_by_job: Counter[str] = field(default_factory=Counter)
    #: Credits taken by created tasks: in all, and per job id (tasks whose create named one).
    credits_charged: int = 0
    charged_by_job: Counter[str] = field(default_factory=Counter)
    create_rejections_by_code: Counter[int] = field(default_factory=Counter)
    auth_failures: int = 0
    http_5xx: int = 0
    http_429: int = 0
    hangs: int = 0
    webhook_deliveries: int = 0
    webhook_attempts: int = 0
    webhook_failures: int = 0
    webhooks_skipped: int = 0
    webhooks_disabled: int = 0
    #: Output downloads by how they were answered (``ok``, ``cut``, ``http_5xx``,
    #: ``expired``, ``not_found``).
    output_downloads: Counter[str] = field(default_factory=Counter)

    def count_call(self, route: str) -> None:
        """Count one received API request (before any fault is applied)."""
        self.calls[ROUTE_COUNTERS[route]] += 1

    def count_create(self, fingerprint: str, job_id: str | None, charge: int = 0) -> None:
        """Count one task actually created, and the ``charge`` in credits it cost."""
        self.creates += 1
        self.creates_by_fingerprint[fingerprint] += 1
        self.credits_charged += charge
        if job_id is not None:
            self.creates_by_job[job_id] += 1
            self.charged_by_job[job_id] += charge

    def snapshot(self) -> dict[str, object]:
        """The JSON body of ``/_sandbox/stats`` (without the engine's live gauges)."""
        out: dict[str, object] = {name: self.calls[name] for name in ROUTE_COUNTERS.values()}
        out.update(
            {
                "creates": self.creates,
                "creates_by_fingerprint": dict(self.creates_by_fingerprint),
                "duplicate_creates": sum(
                    max(0, c - 1) for c in self.creates_by_fingerprint.values()
                ),
                "creates_by_job": dict(self.creates_by_job),
                "duplicate_job_creates": sum(max(0, c - 1) for c in self.creates_by_job.values()),
                "credits_charged": self.credits_charged,
                "charged_by_job": dict(self.charged_by_job),
                "create_rejections_by_code": {
                    str(code): n for code, n in sorted(self.create_rejections_by_code.items())
                },
                "auth_failures": self.auth_failures,
                "http_5xx": self.http_5xx,
                "http_429": self.http_429,
                "hangs": self.hangs,
                "webhook_deliveries": self.webhook_deliveries,
                "webhook_attempts": self.webhook_attempts,
                "webhook_failures": self.webhook_failures,
                "webhooks_skipped": self.webhooks_skipped,
                "webhooks_disabled": self.webhooks_disabled,
                "output_downloads": dict(self.output_downloads),
            }
        )
        return out
