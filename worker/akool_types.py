"""Typed views of Akool head-swap (v4) requests and responses.

Akool uses ``video_url`` for two different things: the *source* video in requests and the
*output* video in task responses. Our types never use that name: requests carry
``source_video_url`` and results carry ``output_url``. Unknown response fields are ignored,
as the API reference asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Remote status values shared by analyses and tasks.
STATUS_QUEUED = 1
STATUS_PROCESSING = 2
STATUS_COMPLETED = 3
STATUS_FAILED = 4


class MalformedResponse(ValueError):
    """A success envelope whose ``data`` lacks a field we cannot do without."""


def _str(data: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise MalformedResponse(f"response data has no {key!r}")
        return None
    return str(value)


def _int(data: dict[str, Any], key: str, required: bool = False) -> int | None:
    value = data.get(key)
    if isinstance(value, bool) or value is None:
        if required:
            raise MalformedResponse(f"response data has no integer {key!r}")
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        if required:
            raise MalformedResponse(f"response data {key!r} is not an integer") from None
        return None


def _float(data: dict[str, Any], key: str) -> float | None:
    value = data.get(key)
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _credits(data: dict[str, Any], key: str) -> float | None:
    """A charge: a finite number >= 0, else unknown (None)."""
    value = _float(data, key)
    return value if value is not None and 0 <= value < float("inf") else None


@dataclass(frozen=True)
class Mapping:
    obj_id: int
    img_url: str


@dataclass(frozen=True)
class CreateTaskRequest:
    """The body of ``task/create``, with our unambiguous names."""

    source_video_url: str
    mappings: tuple[Mapping, ...]
    model_name: str = "akool-premium"
    resolution: str = "720p"
    template_id: str | None = None
    keep_original_sound: bool = True
    webhook_url: str | None = None

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "video_url": self.source_video_url,
            "mappings": [{"obj_id": m.obj_id, "img_url": m.img_url} for m in self.mappings],
            "model_name": self.model_name,
            "resolution": self.resolution,
            "keep_original_sound": self.keep_original_sound,
        }
        if self.template_id:
            body["template_id"] = self.template_id
        if self.webhook_url:
            body["webhookUrl"] = self.webhook_url
        return body


@dataclass(frozen=True)
class MediaObject:
    obj_id: int
    preview_url: str | None
    media_type: str | None


@dataclass(frozen=True)
class Analysis:
    """An analysis record (submit and detail share the shape)."""

    analysis_id: str
    status: int
    source_video_url: str | None
    progress: float | None
    media: tuple[MediaObject, ...] = ()
    detected_objects: int | None = None
    error_code: int | None = None
    error_reason: str | None = None
    video_info: dict[str, Any] = field(default_factory=dict)

    @property
    def obj_ids(self) -> frozenset[int]:
        return frozenset(m.obj_id for m in self.media)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Analysis:
        result = data.get("analysis_result") or {}
        media_raw = result.get("media") if isinstance(result, dict) else None
        media = []
        for item in media_raw or []:
            if isinstance(item, dict) and (obj_id := _int(item, "obj_id")) is not None:
                media.append(MediaObject(obj_id, _str(item, "img_url"), _str(item, "media_type")))
        info = result.get("video_info") if isinstance(result, dict) else None
        return cls(
            analysis_id=_str(data, "_id", required=True) or "",
            status=_int(data, "status", required=True) or 0,
            source_video_url=_str(data, "video_url"),
            progress=_float(data, "progress"),
            media=tuple(media),
            detected_objects=_int(result, "detected_objects") if isinstance(result, dict) else None,
            error_code=_int(data, "error_code"),
            error_reason=_str(data, "error_reason"),
            video_info=info if isinstance(info, dict) else {},
        )


@dataclass(frozen=True)
class Task:
    """A head-swap task as create or detail returns it."""

    remote_id: str
    status: int
    output_url: str | None = None
    source_video_url: str | None = None
    video_duration: float | None = None
    progress: float | None = None
    error_code: int | None = None
    error_reason: str | None = None
    internal_task_id: str | None = None
    file_name: str | None = None
    #: Credits held at create (``deduction_lock_duration``), and the final charge when a
    #: response reports one (``deduction_credit``, v5-style; the sandbox reports it).
    charge_hold: float | None = None
    final_charge: float | None = None

    @property
    def charge(self) -> float | None:
        """What this response says the task costs: the final charge, else the hold."""
        return self.final_charge if self.final_charge is not None else self.charge_hold

    @property
    def is_final(self) -> bool:
        return self.status in (STATUS_COMPLETED, STATUS_FAILED)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Task:
        return cls(
            remote_id=_str(data, "_id", required=True) or "",
            status=_int(data, "status", required=True) or 0,
            output_url=_str(data, "video_url"),  # in responses, video_url is the OUTPUT
            source_video_url=_str(data, "source_video_url"),
            video_duration=_float(data, "video_duration"),
            progress=_float(data, "progress"),
            error_code=_int(data, "error_code"),
            error_reason=_str(data, "error_reason"),
            internal_task_id=_str(data, "task_id"),
            file_name=_str(data, "file_name"),
            charge_hold=_credits(data, "deduction_lock_duration"),
            final_charge=_credits(data, "deduction_credit"),
        )
