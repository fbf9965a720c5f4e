"""marshmallow schemas for the job message (the contract producers send).

A job message is the Akool create body (``video_url``, ``mappings``, ``model_name``,
``resolution``, ``template_id``, ``keep_original_sound``, ``webhookUrl``) plus our
envelope (``job_id``, ``idempotency_key``, ``callback_task``, ``callback_url``,
``metadata``). Unknown fields are rejected. :func:`validate_job` returns the clean dict or
raises :class:`JobValidationError` with a JSON-safe ``field -> messages`` map.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    post_load,
    validate,
    validates,
    validates_schema,
)

from worker.errors import JobValidationError

MAX_URL_LENGTH = 2048
MAX_MAPPINGS = 5
MAX_METADATA_BYTES = 4096
MAX_METADATA_DEPTH = 4
RESOLUTIONS = ("480p", "720p")

_HTTP_URL = [
    validate.Length(max=MAX_URL_LENGTH),
    validate.URL(schemes={"http", "https"}, require_tld=False),
]
_ID = validate.Regexp(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", error="Must be 1-64 of A-Z a-z 0-9 _ . -"
)
_TASK_NAME = validate.Regexp(r"^[A-Za-z_][\w.-]{0,199}$", error="Not a Celery task name.")


class StrictBoolean(fields.Boolean):
    """Only JSON true/false: ``"yes"`` or ``1`` is an error, not a guess."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kw: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class StrictInteger(fields.Integer):
    """An integer that is not a bool (JSON ``true`` is not obj_id 1)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kw: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        result: int = super()._deserialize(value, attr, data, **kw)
        return result


class MappingSchema(Schema):
    class Meta:
        unknown = RAISE

    obj_id = StrictInteger(strict=True, required=True, validate=validate.Range(min=0, max=10_000))
    img_url = fields.String(required=True, validate=_HTTP_URL)


class CallbackTaskSchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=_TASK_NAME)
    queue = fields.String(load_default=None, validate=_TASK_NAME)


class JobSchema(Schema):
    """Validates one job message. ``allowed_models`` comes from settings."""

    class Meta:
        unknown = RAISE

    # --- the Akool create body --------------------------------------------------------
    video_url = fields.String(required=True, validate=_HTTP_URL)
    mappings = fields.List(
        fields.Nested(MappingSchema),
        required=True,
        validate=validate.Length(min=1, max=MAX_MAPPINGS),
    )
    model_name = fields.String(load_default="akool-premium")
    resolution = fields.String(required=True, validate=validate.OneOf(RESOLUTIONS))
    template_id = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(1, 128)
    )
    keep_original_sound = StrictBoolean(load_default=True)
    webhookUrl = fields.String(load_default=None, allow_none=True, validate=_HTTP_URL)

    # --- our envelope -----------------------------------------------------------------
    job_id = fields.String(load_default=None, validate=_ID)
    idempotency_key = fields.String(load_default=None, validate=validate.Length(1, 200))
    callback_task = fields.Nested(CallbackTaskSchema, load_default=None, allow_none=True)
    callback_url = fields.String(load_default=None, allow_none=True, validate=_HTTP_URL)
    metadata = fields.Dict(keys=fields.String(), load_default=dict)

    def __init__(self, *, allowed_models: Iterable[str] = ("akool-premium",), **kw: Any) -> None:
        super().__init__(**kw)
        self.allowed_models = tuple(allowed_models)

    @validates("model_name")
    def _model_allowed(self, value: str, **_: Any) -> None:
        if value not in self.allowed_models:
            raise ValidationError(f"Must be one of: {', '.join(self.allowed_models)}.")

    @validates("metadata")
    def _metadata_small(self, value: dict[str, Any], **_: Any) -> None:
        try:
            encoded = json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ValidationError("Must be plain JSON.") from exc
        if len(encoded.encode("utf-8")) > MAX_METADATA_BYTES:
            raise ValidationError(f"Must be at most {MAX_METADATA_BYTES} bytes of JSON.")
        if _depth(value) > MAX_METADATA_DEPTH:
            raise ValidationError(f"Must nest at most {MAX_METADATA_DEPTH} levels.")

    @validates_schema
    def _distinct_obj_ids(self, data: dict[str, Any], **_: Any) -> None:
        ids = [m["obj_id"] for m in data.get("mappings") or []]
        if len(ids) != len(set(ids)):
            raise ValidationError("obj_id values must be distinct.", field_name="mappings")

    @post_load
    def _rename(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["webhook_url"] = data.pop("webhookUrl", None)
        return data


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_METADATA_DEPTH + 1:
        return level
    if isinstance(value, Mapping):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def json_safe_errors(messages: Any) -> Any:
    """marshmallow's error map with every key a string (list indexes become "0", "1"...)."""
    if isinstance(messages, Mapping):
        return {str(k): json_safe_errors(v) for k, v in messages.items()}
    if isinstance(messages, list):
        return [json_safe_errors(m) for m in messages]
    return str(messages)


def validate_job(
    message: Any, allowed_models: Iterable[str] = ("akool-premium",)
) -> dict[str, Any]:
    """Validate a raw job message; return the loaded job or raise JobValidationError."""
    if not isinstance(message, Mapping):
        raise JobValidationError({"_schema": ["Job must be a JSON object."]})
    try:
        loaded: dict[str, Any] = JobSchema(allowed_models=allowed_models).load(dict(message))
    except ValidationError as exc:
        raise JobValidationError(json_safe_errors(exc.messages)) from None
    except (RecursionError, TypeError, ValueError) as exc:  # pathological input
        raise JobValidationError({"_schema": [f"Unreadable job: {type(exc).__name__}"]}) from None
    return loaded
