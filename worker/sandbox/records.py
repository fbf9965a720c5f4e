"""Analysis and task records. Status is computed lazily from timestamps: no thread per task.

A record's life spans ``total`` seconds from its creation (monotonic clock): the first 20 %
is status 1 (queued, progress 0), the rest status 2 (progress rising 1..99), then the final
status fixed at creation (3 completed, or 4 failed). ``total == 0`` means final at once.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field

from worker.sandbox import codes
from worker.sandbox.validation import CreateRequest
from worker.sandbox.videos import VideoProfile

QUEUE_SHARE = 0.2
UID = 101400
TEAM_ID = "6805fb69e92d9edc7ca0b409"
PRIORITY = 9
COMPLETED, FAILED = 3, 4


@dataclass(frozen=True)
class Timeline:
    """When a record started (``time.monotonic()``) and how long until its final state."""

    start: float
    total: float

    @property
    def end(self) -> float:
        """Monotonic time at which the final state is reached."""
        return self.start + self.total

    def status_at(self, now: float, outcome: int) -> tuple[int, int]:
        """``(status, progress)`` at ``now`` for a record that ends in ``outcome``."""
        elapsed = now - self.start
        if elapsed >= self.total:
            return outcome, 100 if outcome == COMPLETED else 0
        queued = self.total * QUEUE_SHARE
        if elapsed < queued:
            return 1, 0
        fraction = (elapsed - queued) / (self.total - queued)
        return 2, min(99, 1 + int(99 * fraction))


def fingerprint(video_url: str, mappings: tuple[tuple[int, str], ...]) -> str:
    """sha256 hex of canonical JSON: ``video_url`` plus sorted ``[obj_id, img_url]`` pairs.

    Exactly ``json.dumps({"mappings": sorted(pairs), "video_url": url}, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` encoded as UTF-8.
    """
    canonical = json.dumps(
        {"video_url": video_url, "mappings": sorted([list(pair) for pair in mappings])},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class Analysis:
    """One person-detection run on a source video."""

    id: str
    task_id: str
    create_time: int
    video_url: str
    timeline: Timeline
    video: VideoProfile
    outcome: int = COMPLETED
    error_code: int = 0
    error_reason: str = "success"

    def status(self, now: float) -> int:
        """The status at ``now`` (1..4)."""
        return self.timeline.status_at(now, self.outcome)[0]

    def _base_json(self, status: int, progress: int) -> dict[str, object]:
        return {
            "_id": self.id,
            "create_time": self.create_time,
            "uid": UID,
            "team_id": TEAM_ID,
            "video_url": self.video_url,
            "type": "head",
            "status": status,
            "task_id": self.task_id,
            "progress": progress,
        }

    def submit_json(self) -> dict[str, object]:
        """The analyze response ``data``: queued, without result or error fields."""
        return self._base_json(1, 0)

    def result_json(self, base_url: str) -> dict[str, object]:
        """``analysis_result`` of a completed analysis."""
        media = [
            {
                "media_type": "images",
                "obj_id": obj_id,
                "img_url": f"{base_url}/_sandbox/preview/{self.id}/{obj_id}.png",
            }
            for obj_id in range(self.video.persons)
        ]
        return {
            "detected_objects": self.video.persons,
            "media": media,
            "video_info": self.video.video_info(),
        }

    def detail_json(self, now: float, base_url: str) -> dict[str, object]:
        """The analysis-detail response ``data`` at ``now``."""
        status, progress = self.timeline.status_at(now, self.outcome)
        data = self._base_json(status, progress)
        data["analysis_result"] = self.result_json(base_url) if status == COMPLETED else None
        if status in (COMPLETED, FAILED):
            data["error_code"] = self.error_code
            data["error_reason"] = self.error_reason
        return data


def new_analysis_outcome(video: VideoProfile) -> tuple[int, int, str]:
    """``(outcome, error_code, error_reason)`` an analysis of ``video`` ends with."""
    if video.analysis_fails:
        return FAILED, codes.VIDEO_PROCESSING_ERROR, codes.MESSAGES[codes.VIDEO_PROCESSING_ERROR]
    if not video.duration_ok:
        return FAILED, codes.DURATION_EXCEEDED, codes.MESSAGES[codes.DURATION_EXCEEDED]
    return COMPLETED, 0, "success"


@dataclass
class WebhookState:
    """Delivery bookkeeping of one task's final-state webhook."""

    attempts: int = 0
    delivered: bool = False
    gave_up: bool = False
    skipped: str | None = None
    last_status: int | None = None


@dataclass
class Task:
    """One head-swap generation task."""

    id: str
    task_id: str
    create_time: int
    request: CreateRequest
    fingerprint: str
    video_duration: float
    timeline: Timeline
    outcome: int = COMPLETED
    error_code: int | None = None
    error_reason: str | None = None
    #: Credits this task costs: the ``credits_per_task`` knob when it was created (unknown
    #: #18). Reported as ``deduction_lock_duration`` at create and ``deduction_credit`` once
    #: final; a later change of the knob does not reprice it.
    charge: int = 1
    webhook: WebhookState = field(default_factory=WebhookState)
    #: Wall-clock times of task-detail calls for this task (tests prove "no double poll").
    detail_calls: list[float] = field(default_factory=list)

    @property
    def file_name(self) -> str:
        """The output file name the platform "chooses"."""
        return f"Headswap_{self.create_time}.mp4"

    @property
    def deduction_duration(self) -> int:
        """Billing duration: 1.5x the video length, rounded up (unknown #18)."""
        return math.ceil(self.video_duration * 1.5)

    def status(self, now: float) -> int:
        """The status at ``now`` (1..4)."""
        return self.timeline.status_at(now, self.outcome)[0]

    def output_url(self, base_url: str) -> str:
        """Where the finished video is served."""
        return f"{base_url}/_sandbox/output/{self.id}.mp4"

    def create_json(self) -> dict[str, object]:
        """The create response ``data`` (a status-1 snapshot; ``video_url`` is the output)."""
        return {
            "_id": self.id,
            "create_time": self.create_time,
            "uid": UID,
            "team_id": TEAM_ID,
            "video_duration": self.video_duration,
            "task_id": self.task_id,
            "resolution": self.request.resolution,
            "status": 1,
            "deduction_lock_duration": self.charge,
            "model_name": self.request.model_name,
            "file_name": self.file_name,
            "video_url": None,
        }

    def detail_json(self, now: float, base_url: str) -> dict[str, object]:
        """The task-detail response ``data`` at ``now``."""
        status, progress = self.timeline.status_at(now, self.outcome)
        data: dict[str, object] = {
            "_id": self.id,
            "uid": UID,
            "team_id": TEAM_ID,
            "source_video_url": self.request.video_url,
            "create_time": self.create_time,
            "status": status,
            "video_duration": self.video_duration,
            "resolution": self.request.resolution,
            "deduction_duration": self.deduction_duration,
            "video_url": self.output_url(base_url) if status == COMPLETED else None,
            "progress": progress,
            "priority": PRIORITY,
            "task_id": self.task_id,
            "file_name": self.file_name,
            "model_name": self.request.model_name,
        }
        if status in (COMPLETED, FAILED):
            data["deduction_credit"] = self.charge
        if status == FAILED:
            data["error_code"] = self.error_code
            data["error_reason"] = self.error_reason
        return data

    def webhook_payload(self, base_url: str) -> dict[str, object]:
        """The decrypted webhook payload for the final state (unknowns #29-31)."""
        payload: dict[str, object] = {
            "_id": self.id,
            "status": self.outcome,
            "type": "headswap",
            "url": self.output_url(base_url) if self.outcome == COMPLETED else "",
            "deduction_credit": self.charge,
        }
        if self.outcome == FAILED:
            payload["error_code"] = self.error_code
            payload["error_reason"] = self.error_reason
        return payload

    def internal_json(self, now: float, base_url: str) -> dict[str, object]:
        """The ``/_sandbox/tasks/<id>`` view: detail plus what the API does not show."""
        req = self.request
        return {
            "detail": self.detail_json(now, base_url),
            "video_url": req.video_url,
            "mappings": [{"obj_id": o, "img_url": u} for o, u in req.mappings],
            "template_id": req.template_id,
            "keep_original_sound": req.keep_original_sound,
            "webhookUrl": req.webhook_url,
            "job_id": req.job_id,
            "fingerprint": self.fingerprint,
            "outcome": self.outcome,
            "charge": self.charge,
            "seconds_to_final": max(0.0, self.timeline.end - now),
            "processing_seconds": self.timeline.total,
            "detail_calls": list(self.detail_calls),
            "webhook": {
                "attempts": self.webhook.attempts,
                "delivered": self.webhook.delivered,
                "gave_up": self.webhook.gave_up,
                "skipped": self.webhook.skipped,
                "last_status": self.webhook.last_status,
            },
        }
