"""marshmallow schemas for the job message (the contract producers send).

A job message is the Akool create body (``video_url``, ``mappings``, ``model_name``,
``resolution``, ``template_id``, ``keep_original_sound``, ``webhookUrl``) plus our
envelope (``job_id``, ``idempotency_key``, ``callback_task``, ``callback_url``,
``metadata``). Unknown fields are rejected.

Entry points:

- :func:`validate_job` (or :meth:`ContractPolicy.validate`, built from settings so that the
  producer and the worker refuse exactly the same things) returns the clean dict or raises
  :class:`JobValidationError` with a JSON-safe ``field -> messages`` map. It never raises
  anything else, whatever the input: before marshmallow sees a field, :func:`_screen`
  walks it without recursion and turns what marshmallow, ``json`` or Redis cannot take
  (lone surrogates, deep nesting, huge integers, NaN, bytes, non-string keys) into a
  field error naming the field.
- :func:`rejection_fields` and :func:`safe_job_id`: what a ``rejected`` record may keep.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

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

from headswap_client.errors import JobValidationError

MAX_URL_LENGTH = 2048
MAX_MAPPINGS = 5
MAX_METADATA_BYTES = 4096
MAX_METADATA_DEPTH = 4
RESOLUTIONS = ("480p", "720p")

#: Deepest nesting any field may have (metadata has its own, smaller limit). A legal
#: message nests at most 2 levels outside metadata; this only bounds the walk.
MAX_NESTING = 32
#: Most values (strings, numbers, items, keys) one field may hold. 4096 bytes of metadata
#: hold at most ~2,050; a legal mapping list ~15.
MAX_VALUES_PER_FIELD = 5_000
#: Python refuses ``str()`` of an integer with more than 4300 digits (int-str limit);
#: an integer this wide is refused before anything tries to print it.
MAX_INT_BITS = 14_280  # 2**14280 has 4299 digits
#: Unknown field names listed one by one in the error map; the rest are counted.
MAX_UNKNOWN_LISTED = 20

#: Field names, keys and patterns are matched whole: ``fullmatch`` (``\A…\Z``), never
#: ``^…$`` (Python's ``$`` also matches before a final newline: ``"job\n"`` passed).
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}"
TASK_NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_.-]{0,199}"  # ASCII, as JSON Schema's \w is
#: A producer's name: short, lower case, no ':' or '|' (they separate key parts in Redis).
PRODUCER_PATTERN = r"[a-z0-9][a-z0-9_.-]{0,31}"
DEFAULT_PRODUCER = "default"
#: ``priority``: 0..9, higher is admitted first within its producer's line.
PRIORITY_MIN, PRIORITY_MAX, DEFAULT_PRIORITY = 0, 9, 5


class FullMatch(validate.Validator):
    """``validate.Regexp`` with ``re.fullmatch``: the whole string, no final newline."""

    def __init__(self, pattern: str, *, error: str) -> None:
        self.regex = re.compile(pattern, re.ASCII)
        self.message = error

    def __call__(self, value: str) -> str:
        if self.regex.fullmatch(value) is None:
            raise ValidationError(self.message)
        return value


_HTTP_URL = [
    validate.Length(max=MAX_URL_LENGTH),
    validate.URL(schemes={"http", "https"}, require_tld=False),
]
_ID = FullMatch(
    ID_PATTERN, error="Must be 1-64 of A-Z a-z 0-9 _ . - (starting with a letter or digit)."
)
_TASK_NAME = FullMatch(TASK_NAME_PATTERN, error="Not a Celery task name.")
_PRODUCER = FullMatch(
    PRODUCER_PATTERN, error="Must be 1-32 of a-z 0-9 _ . - (starting with a letter or digit)."
)


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
    """Validates one job message. ``allowed_models`` and ``own_webhook_receiver`` come
    from settings (see :class:`ContractPolicy`)."""

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
    producer = fields.String(load_default=DEFAULT_PRODUCER, validate=_PRODUCER)
    priority = StrictInteger(
        strict=True, load_default=DEFAULT_PRIORITY,
        validate=validate.Range(PRIORITY_MIN, PRIORITY_MAX),
    )  # fmt: skip

    def __init__(
        self,
        *,
        allowed_models: Iterable[str] = ("akool-premium",),
        own_webhook_receiver: bool = False,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.allowed_models = tuple(allowed_models)
        self.own_webhook_receiver = own_webhook_receiver

    @validates("model_name")
    def _model_allowed(self, value: str, **_: Any) -> None:
        if value not in self.allowed_models:
            raise ValidationError(f"Must be one of: {', '.join(self.allowed_models)}.")

    @validates("webhookUrl")
    def _webhook_is_ours(self, value: str | None, **_: Any) -> None:
        if value and self.own_webhook_receiver:
            raise ValidationError("This worker receives Akool webhooks itself; use callback_url.")

    @validates("metadata")
    def _metadata_small(self, value: dict[str, Any], **_: Any) -> None:
        # _screen already refused what json cannot encode and anything deeper than allowed.
        encoded = json.dumps(value, ensure_ascii=False, allow_nan=False)
        if len(encoded.encode("utf-8")) > MAX_METADATA_BYTES:
            raise ValidationError(_METADATA_TOO_BIG)

    @validates_schema
    def _distinct_obj_ids(self, data: dict[str, Any], **_: Any) -> None:
        ids = [m["obj_id"] for m in data.get("mappings") or []]
        if len(ids) != len(set(ids)):
            raise ValidationError("obj_id values must be distinct.", field_name="mappings")

    @post_load
    def _rename(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
        data["webhook_url"] = data.pop("webhookUrl", None)
        return data


FIELD_NAMES = frozenset(JobSchema().fields)
_METADATA_TOO_BIG = f"Must be at most {MAX_METADATA_BYTES} bytes of JSON."
_METADATA_TOO_DEEP = f"Must nest at most {MAX_METADATA_DEPTH} levels."
_MAPPINGS_LENGTH = f"Length must be between 1 and {MAX_MAPPINGS}."


class ContractSettings(Protocol):
    """The settings the contract depends on: the workers' ``config.settings.Settings``
    and the client's :class:`~headswap_client.settings.ClientSettings` both have them."""

    @property
    def allowed_models(self) -> tuple[str, ...]: ...
    @property
    def webhook_public_url(self) -> str: ...


@dataclass(frozen=True)
class ContractPolicy:
    """Every settings-dependent rule of the contract, so the producer and the worker
    refuse exactly the same messages: build it with :meth:`from_settings` on both sides."""

    #: HEADSWAP_ALLOWED_MODELS
    allowed_models: tuple[str, ...] = ("akool-premium",)
    #: True when HEADSWAP_WEBHOOK_PUBLIC_URL is set: a producer's ``webhookUrl`` is refused.
    own_webhook_receiver: bool = False

    @classmethod
    def from_settings(cls, settings: ContractSettings) -> ContractPolicy:
        return cls(
            allowed_models=tuple(settings.allowed_models),
            own_webhook_receiver=bool(settings.webhook_public_url),
        )

    def validate(self, message: Any) -> dict[str, Any]:
        """:func:`validate_job` under this policy."""
        return validate_job(
            message, self.allowed_models, own_webhook_receiver=self.own_webhook_receiver
        )


@functools.lru_cache(maxsize=16)
def _schema(allowed_models: tuple[str, ...], own_webhook_receiver: bool) -> JobSchema:
    """One schema per policy, built once: building one cost ~0.2 ms of CPU a message, and a
    schema keeps nothing between loads (its options are fixed at construction)."""
    return JobSchema(allowed_models=allowed_models, own_webhook_receiver=own_webhook_receiver)


def validate_job(
    message: Any,
    allowed_models: Iterable[str] = ("akool-premium",),
    *,
    own_webhook_receiver: bool = False,
) -> dict[str, Any]:
    """Validate a raw job message; return the loaded job or raise JobValidationError.

    Never raises anything else: hostile input (deep nesting, huge integers, lone
    surrogates, NaN, bytes, non-string keys) becomes a field error naming the field.
    """
    if not isinstance(message, Mapping):
        raise JobValidationError({"_schema": ["Job must be a JSON object."]})
    try:
        readable, errors = _screen(message)
        schema = _schema(tuple(allowed_models), own_webhook_receiver)
        try:
            loaded: dict[str, Any] = schema.load(readable)
        except ValidationError as exc:
            marshmallow_errors = json_safe_errors(exc.messages)
            # A field _screen refused was left out: marshmallow's "Missing data" is not news.
            errors = {**marshmallow_errors, **errors}
    except (RecursionError, TypeError, ValueError) as exc:  # a last net: should not happen
        raise JobValidationError({"_schema": [f"Unreadable job: {type(exc).__name__}"]}) from None
    if errors:
        raise JobValidationError(errors)
    return loaded


# --- screening: what marshmallow, json and Redis cannot take --------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ERROR = "Contains a lone UTF-16 surrogate ({}); text must be valid Unicode."

Path = tuple[str | int, ...]


def _screen(message: Mapping[Any, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a message into the fields marshmallow may read and field errors for the rest.

    Unknown and non-string field names are reported here (at most MAX_UNKNOWN_LISTED by
    name); a known field is walked once, without recursion, and left out on a problem.
    """
    readable: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    unknown = 0
    for key, value in message.items():
        if isinstance(key, str) and key in FIELD_NAMES:
            problem = _unreadable(key, value)
            if problem is None:
                readable[key] = value
            else:
                _put(errors, *problem)
            continue
        unknown += 1
        if unknown <= MAX_UNKNOWN_LISTED:
            errors[_key_label(key)] = [_unknown_field_error(key)]
    if unknown > MAX_UNKNOWN_LISTED:
        errors["_schema"] = [f"{unknown - MAX_UNKNOWN_LISTED} more unknown fields not listed."]
    return readable, errors


def _unknown_field_error(key: Any) -> str:
    if not isinstance(key, str):
        return f"Unknown field; field names must be strings (got {type(key).__name__})."
    bad = _SURROGATE.search(key)
    if bad:
        return "Unknown field; its name c" + _SURROGATE_ERROR.format(_codepoint(bad[0]))[1:]
    return "Unknown field."


def _unreadable(name: str, value: Any) -> tuple[Path, str] | None:
    """The first thing in one field that is not plain JSON text, as (path, message)."""
    if name == "mappings" and isinstance(value, list) and len(value) > MAX_MAPPINGS:
        return (name,), _MAPPINGS_LENGTH  # one error, not one per surplus item
    metadata = name == "metadata"
    max_depth = MAX_METADATA_DEPTH if metadata else MAX_NESTING
    too_deep = _METADATA_TOO_DEEP if metadata else f"Must nest at most {MAX_NESTING} levels."
    too_big = _METADATA_TOO_BIG if metadata else f"Must hold at most {MAX_VALUES_PER_FIELD} values."
    stack: list[tuple[Path, Any, int]] = [((name,), value, 0)]
    count = 1
    while stack:
        path, item, depth = stack.pop()
        if isinstance(item, Mapping | list | tuple):
            depth += 1
            if depth > max_depth:
                return path, too_deep
            children = item.items() if isinstance(item, Mapping) else enumerate(item)
            for key, child in children:
                count += 1
                if count > MAX_VALUES_PER_FIELD:
                    return (name,), too_big
                if isinstance(item, Mapping) and (problem := _key_problem(key)):
                    return (*path, _key_label(key)), problem
                stack.append(((*path, key), child, depth))
        elif problem := _value_problem(item):
            return path, problem
    return None


def _key_problem(key: Any) -> str | None:
    if not isinstance(key, str):
        return f"Keys must be strings (got {type(key).__name__})."
    return _value_problem(key)


def _value_problem(value: Any) -> str | None:
    """Why a scalar is not plain JSON, or None. Containers are walked by the caller."""
    if isinstance(value, str):
        bad = _SURROGATE.search(value)
        return _SURROGATE_ERROR.format(_codepoint(bad[0])) if bad else None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        return "Integer too large: at most 4299 digits."
    if isinstance(value, float) and not math.isfinite(value):
        return "Must be a finite number (NaN and Infinity are not JSON)."
    if isinstance(value, int | float):
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return "Must be text, not bytes."
    return f"Not a JSON value (got {type(value).__name__})."


def _put(errors: dict[str, Any], path: Path, message: str) -> None:
    keep = _nesting(path)
    if len(path) > keep:
        message = f"{message} At {_render(path)}."
    node = errors
    location = [_key_label(p) for p in path[:keep]]
    if keep == 2 and path[0] == "mappings":
        location.append("_schema")  # the item itself, as marshmallow reports it
    for key in location[:-1]:
        node = node.setdefault(key, {})
    node[location[-1]] = [message]


def _nesting(path: Path) -> int:
    """How many path components an error keeps as nested keys, as marshmallow nests them
    (``mappings.0.img_url``, ``callback_task.name``); a deeper problem is reported there
    with its full path in the message."""
    if path[0] == "mappings" and len(path) > 1 and isinstance(path[1], int):
        return 3 if len(path) > 2 and isinstance(path[2], str) else 2
    if path[0] == "callback_task" and len(path) > 1 and isinstance(path[1], str):
        return 2
    return 1


def _render(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else ("." if out else "") + _short(part, 40)
    return _short(out, 200)


def _codepoint(char: str) -> str:
    return f"U+{ord(char):04X}"


def _text(value: str) -> str:
    """``value`` with each lone surrogate written as ``\\udXXX``: always encodable to UTF-8."""
    if _SURROGATE.search(value) is None:
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _short(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _key_label(key: Any) -> str:
    """A printable, UTF-8-safe name for any key (str() of a huge int would raise)."""
    if isinstance(key, str):
        return _text(key)
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key) if key.bit_length() <= 64 else f"<int of {key.bit_length()} bits>"
    if key is None or isinstance(key, bool | float):
        return repr(key)
    return f"<{type(key).__name__}>"


def json_safe_errors(messages: Any) -> Any:
    """marshmallow's error map with every key a string (list indexes become "0", "1"...)
    and every string encodable to UTF-8."""
    if isinstance(messages, Mapping):
        return {_key_label(k): json_safe_errors(v) for k, v in messages.items()}
    if isinstance(messages, list | tuple):
        return [json_safe_errors(m) for m in messages]
    return _key_label(messages)


# --- what a rejected record keeps ------------------------------------------------------

#: A rejected record's ``field_errors``, JSON-encoded as UTF-8, is at most this long.
REJECTED_MAX_BYTES = 16_384
#: (fields, entries per nested map or message list, characters per name or message),
#: tried in turn until the encoded errors fit REJECTED_MAX_BYTES.
_REJECTED_CAPS = ((20, 10, 200), (10, 5, 120), (5, 3, 80), (3, 2, 40))
#: Nested error maps deeper than this are summarised.
REJECTED_MAX_DEPTH = 4
TRUNCATED_KEY = "_truncated"


def safe_job_id(message: Any) -> str | None:
    """``message["job_id"]`` when it is a valid job id by the contract's own rule, else None."""
    raw = message.get("job_id") if isinstance(message, Mapping) else None
    if isinstance(raw, str) and _ID.regex.fullmatch(raw):
        return raw
    return None


def rejection_fields(message: Any, errors: Mapping[str, Any]) -> dict[str, Any]:
    """What a ``rejected`` record may keep of an invalid message and its field errors.

    ``{"reason": "invalid", "field_errors": {...}}`` plus ``"job_id"`` when the message's
    own job id is valid (:func:`safe_job_id`). Nothing of the message's values is kept:
    unknown fields appear only by name in ``field_errors``. The errors are capped (fields,
    entries per level, characters per name and message; a ``_truncated`` entry counts
    what was dropped) so that their JSON is at most REJECTED_MAX_BYTES of UTF-8; every
    string is UTF-8-encodable (lone surrogates are written as ``\\udXXX``).
    """
    kept: dict[str, Any] = {"reason": "invalid", "field_errors": _fitting_errors(errors)}
    job_id = safe_job_id(message)
    if job_id is not None:
        kept["job_id"] = job_id
    return kept


def _fitting_errors(errors: Mapping[str, Any]) -> dict[str, Any]:
    for fields_cap, entries_cap, text_cap in _REJECTED_CAPS:
        capped = _cap_map(errors, fields_cap, entries_cap, text_cap, depth=1)
        if _encoded_size(capped) <= REJECTED_MAX_BYTES:
            return capped
    return {TRUNCATED_KEY: [f"Field errors too large to keep ({len(errors)} fields)."]}


def _cap_map(
    tree: Mapping[Any, Any], limit: int, entries: int, text: int, depth: int
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for index, (key, value) in enumerate(tree.items()):
        if index == limit:
            out[TRUNCATED_KEY] = [f"{len(tree) - limit} more not shown."]
            break
        out.setdefault(_short(_key_label(key), text), _cap_value(value, entries, text, depth))
    return out


def _cap_value(value: Any, entries: int, text: int, depth: int) -> Any:
    if isinstance(value, Mapping):
        if depth >= REJECTED_MAX_DEPTH:
            return [f"{len(value)} nested errors not shown."]
        return _cap_map(value, entries, entries, text, depth + 1)
    if isinstance(value, list | tuple):
        kept = [_cap_value(v, entries, text, depth + 1) for v in value[:entries]]
        if len(value) > entries:
            kept.append(f"{len(value) - entries} more not shown.")
        return kept
    return _short(_key_label(value), text)


def _encoded_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False).encode("utf-8"))
