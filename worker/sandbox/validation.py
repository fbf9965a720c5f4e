"""Request-body checks for analyze and create. Pure functions: they raise
:class:`~worker.sandbox.codes.Rejection` (code 1003) with a specific message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from worker.sandbox.codes import MSG_TOO_MANY_MAPPINGS, bad_param

MAX_MAPPINGS = 5
RESOLUTIONS = ("480p", "720p")


def is_http_url(value: object) -> bool:
    """True for a string ``http://`` or ``https://`` URL with a host."""
    if not isinstance(value, str) or not value:
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _require_object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_param("request body must be a JSON object")
    return body


def _require_url(body: dict[str, Any], field: str) -> str:
    value = body.get(field)
    if value is None or value == "":
        raise bad_param(f"{field} is required")
    if not is_http_url(value):
        raise bad_param(f"{field} must be a public http(s) URL")
    return str(value)


def parse_analyze(body: object) -> str:
    """Validate an analyze body; return its ``video_url``."""
    fields = _require_object(body)
    video_url = _require_url(fields, "video_url")
    if fields.get("type") != "head":
        raise bad_param('type must be "head"')
    return video_url


@dataclass(frozen=True)
class CreateRequest:
    """A create body that passed the schema checks."""

    video_url: str
    mappings: tuple[tuple[int, str], ...]
    model_name: str
    resolution: str
    template_id: str | None
    keep_original_sound: bool
    webhook_url: str | None

    @property
    def job_id(self) -> str | None:
        """The ``job_id`` query parameter of ``webhookUrl`` (our worker puts it there)."""
        if not self.webhook_url:
            return None
        values = parse_qs(urlsplit(self.webhook_url).query).get("job_id")
        return values[-1] if values else None


def _mapping(index: int, item: object) -> tuple[int, str]:
    if not isinstance(item, dict):
        raise bad_param(f"mappings[{index}] must be an object")
    obj_id = item.get("obj_id")
    if isinstance(obj_id, bool) or not isinstance(obj_id, int) or obj_id < 0:
        raise bad_param(f"mappings[{index}].obj_id must be a non-negative integer")
    img_url = item.get("img_url")
    if not is_http_url(img_url):
        raise bad_param(f"mappings[{index}].img_url must be a public http(s) URL")
    return obj_id, str(img_url)


def _mappings(value: object) -> tuple[tuple[int, str], ...]:
    if not isinstance(value, list) or not value:
        raise bad_param("mappings must be a list of 1 to 5 items")
    if len(value) > MAX_MAPPINGS:
        raise bad_param(MSG_TOO_MANY_MAPPINGS)
    pairs = tuple(_mapping(i, item) for i, item in enumerate(value))
    seen: set[int] = set()
    for obj_id, _ in pairs:
        if obj_id in seen:
            raise bad_param(f"obj_id {obj_id} appears more than once in mappings")
        seen.add(obj_id)
    return pairs


def _optional_str(body: dict[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise bad_param(f"{field} must be a string")
    return value


def _webhook_url(body: dict[str, Any]) -> str | None:
    value = _optional_str(body, "webhookUrl")
    if value is not None and not is_http_url(value):
        raise bad_param("webhookUrl must be an http(s) URL")
    return value


def _keep_sound(body: dict[str, Any]) -> bool:
    value = body.get("keep_original_sound", True)
    if value is None:
        return True
    if not isinstance(value, bool):
        raise bad_param("keep_original_sound must be a boolean")
    return value


def _model_name(body: dict[str, Any]) -> str:
    value = body.get("model_name")
    if not isinstance(value, str) or not value:
        raise bad_param("model_name is required")
    return value


def _resolution(body: dict[str, Any]) -> str:
    value = body.get("resolution")
    if value not in RESOLUTIONS:
        raise bad_param("resolution must be 480p or 720p")
    return str(value)


def parse_create(body: object) -> CreateRequest:
    """Validate a create body's schema (not the account or analysis checks)."""
    fields = _require_object(body)
    return CreateRequest(
        video_url=_require_url(fields, "video_url"),
        mappings=_mappings(fields.get("mappings")),
        model_name=_model_name(fields),
        resolution=_resolution(fields),
        template_id=_optional_str(fields, "template_id"),
        keep_original_sound=_keep_sound(fields),
        webhook_url=_webhook_url(fields),
    )
