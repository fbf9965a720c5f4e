"""What is wrong with a queue entry, from its bytes alone (pure functions).

kombu's Redis transport pops an entry and reads it as a JSON envelope::

    {"body": "<base64>", "content-type": "application/json", "content-encoding": "utf-8",
     "headers": {"task": "headswap.submit", "id": "...", ...},
     "properties": {"delivery_tag": "...", "body_encoding": "base64",
                    "delivery_info": {"exchange": "", "routing_key": "headswap.submit"}}}

:func:`check` names, in kombu's own terms (its JSON reader, its body codecs), every way
an entry can fail before Celery sees it; each of those once raised out of kombu's read
loop and stopped the worker. What Celery decides later (task name, content type, body)
has its own reasons here, used by :mod:`worker.broker.consumer`.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from typing import Any, Final

from kombu.transport.virtual.base import Base64
from kombu.utils.json import loads

from config.settings import redact_url

# --- reasons the transport finds (the bytes are not an envelope kombu can read) ----------
NOT_UTF8: Final = "not_utf8"  #: bytes that are not UTF-8 text (kombu would mangle them)
NOT_JSON: Final = "not_json"  #: text that is not JSON (or JSON kombu's reader refuses)
NOT_AN_OBJECT: Final = "not_an_object"  #: JSON, but an array, string, number or null
BAD_ENVELOPE: Final = "bad_envelope"  #: an object without the parts kombu needs
BAD_BODY_ENCODING: Final = "bad_body_encoding"  #: a body its body_encoding cannot decode
# --- reasons the Celery consumer finds (an envelope, but not a task of ours) --------------
UNKNOWN_TASK: Final = "unknown_task"  #: a task name no worker here registers
NOT_A_TASK: Final = "not_a_task"  #: an envelope naming no task at all
REFUSED_CONTENT_TYPE: Final = "refused_content_type"  #: pickle, yaml: anything but JSON
UNDECODABLE_BODY: Final = "undecodable_body"  #: a body its content type cannot decode
INVALID_TASK: Final = "invalid_task"  #: a task message Celery cannot make a request of
NOT_A_TASK_BODY: Final = "not_a_task_body"  #: a body that is not [args, kwargs, embed]

#: The body codecs of kombu's virtual channel (``Channel.codecs``); no encoding, or
#: ``utf-8``, means the body is the text itself.
_CODECS: Final = {"base64": Base64()}
_ID_OK = re.compile(r"[A-Za-z0-9._-]{1,64}")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]*")
#: Characters shown in a preview.
PREVIEW_CHARS: Final = 80


def check(raw: bytes) -> str | None:
    """The reason kombu could not take ``raw`` as a message, or None when it can."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return NOT_UTF8
    try:
        envelope = loads(text)
    except Exception:  # kombu's reader: ValueError, and its type hooks' own errors
        return NOT_JSON
    if not isinstance(envelope, dict):
        return NOT_AN_OBJECT
    return check_envelope(envelope)


def check_envelope(envelope: Mapping[str, Any]) -> str | None:
    """What kombu's virtual ``Message`` and its QoS read from an envelope, checked."""
    props = envelope.get("properties")
    if not isinstance(props, dict):
        return BAD_ENVELOPE
    tag, info = props.get("delivery_tag"), props.get("delivery_info")
    if not isinstance(tag, str) or not tag:
        return BAD_ENVELOPE
    if not isinstance(info, dict) or "exchange" not in info or "routing_key" not in info:
        return BAD_ENVELOPE
    if envelope.get("headers") is not None and not isinstance(envelope["headers"], dict):
        return BAD_ENVELOPE
    return _check_body(envelope.get("body"), props.get("body_encoding"))


def _check_body(body: Any, encoding: Any) -> str | None:
    if not body:
        return None  # kombu decodes only a non-empty body
    if encoding is None or (isinstance(encoding, str) and encoding.lower() in ("", "utf-8")):
        return None
    codec = _CODECS.get(encoding) if isinstance(encoding, str) else None
    if codec is None:
        return BAD_BODY_ENCODING
    try:
        codec.decode(body)
    except Exception:  # binascii.Error, TypeError: whatever the codec raises
        return BAD_BODY_ENCODING
    return None


def is_task_body(payload: Any) -> bool:
    """A Celery protocol-2 body: ``[args, kwargs, embed]`` (list, object, object). Celery
    unpacks it only in the pool thread, where anything else once failed outside the task
    and left the message unacked for good, holding one of the worker's slots."""
    return (isinstance(payload, list | tuple) and len(payload) == 3
            and isinstance(payload[0], list | tuple) and isinstance(payload[1], dict)
            and isinstance(payload[2], dict))


def entry_id(delivery_tag: Any = None) -> str:
    """A dead message's id: the delivery tag when it is a plain one (a redelivered message
    is then kept once), else a digest of it; a fresh random id without one."""
    if isinstance(delivery_tag, str) and _ID_OK.fullmatch(delivery_tag):
        return delivery_tag
    if delivery_tag is not None:
        return hashlib.sha256(repr(delivery_tag).encode()).hexdigest()[:32]
    return uuid.uuid4().hex


def preview(raw: bytes) -> str:
    """A short, safe look at an entry: for an envelope its task, content type and body
    size (never the body: a base64 body hides URLs, not secrets); for anything else its
    first characters, URLs redacted, control characters escaped."""
    try:
        envelope = loads(raw.decode("utf-8"))
    except Exception:
        envelope = None
    if isinstance(envelope, dict):
        headers = envelope.get("headers")
        task = headers.get("task") if isinstance(headers, dict) else None
        body = envelope.get("body")
        size = len(body) if isinstance(body, str | bytes) else 0
        text = (f"envelope task={safe_text(task)} content-type="
                f"{safe_text(envelope.get('content-type'))} body={size} chars")
        return text[: PREVIEW_CHARS * 2]
    head = raw[: PREVIEW_CHARS * 4].decode("utf-8", "backslashreplace")
    return safe_text(head)


def safe_text(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """``value`` as one short printable line, URLs redacted."""
    text = value if isinstance(value, str) else repr(value)
    text = _URL.sub(lambda m: redact_url(m.group()), text)
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
