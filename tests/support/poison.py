"""Bad queue entries of every kind (issue 11), and a real-looking envelope to make them from.

``bad_entries()`` returns ``(kind, raw bytes, expected reason)``; kinds are named for
what an operator would see in a queue.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

SUBMIT = "headswap.submit"
#: Over the 64 KiB cap: kept truncated.
HUGE = 100 * 1024


def envelope(task: str = SUBMIT, body: bytes = b"[[], {}, {}]", *, queue: str = SUBMIT,
             content_type: str = "application/json", tag: str | None = None,
             drop: tuple[str, ...] = (), headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """A Celery protocol-2 message as kombu's Redis transport stores it."""
    tag = tag or str(uuid.uuid4())
    env: dict[str, Any] = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": content_type,
        "headers": {"lang": "py", "task": task, "id": tag, "shadow": None, "eta": None,
                    "expires": None, "group": None, "group_index": None, "retries": 0,
                    "timelimit": [None, None], "root_id": tag, "parent_id": None,
                    "argsrepr": "()", "kwargsrepr": "{}", "origin": "test",
                    "ignore_result": False, **(headers or {})},
        "properties": {"correlation_id": tag, "reply_to": "", "delivery_mode": 2,
                       "delivery_info": {"exchange": "", "routing_key": queue},
                       "priority": 0, "body_encoding": "base64", "delivery_tag": tag},
    }
    for key in drop:
        env.pop(key)
    return env


def raw(env: dict[str, Any]) -> bytes:
    return json.dumps(env).encode()


def bad_entries(queue: str = SUBMIT, n: int = 0) -> list[tuple[str, bytes, str]]:
    """One entry of every kind; ``n`` makes their text differ from batch to batch."""
    bad_b64 = envelope(queue=queue)
    bad_b64["body"] = f"@@not base64 {n}@@"
    compressed = envelope(queue=queue, headers={"compression": "application/x-gzip"})
    no_id = envelope(queue=queue)
    del no_id["headers"]["id"]
    odd_name = envelope(queue=queue, headers={"task": ["headswap.submit"]})
    no_type = envelope(queue=queue)
    no_type.pop("content-type")
    return [
        ("garbage text", f"hello {n}, I am not JSON".encode(), "not_json"),
        ("json array", b"[1, 2]", "not_an_object"),
        ("json string", b'"str"', "not_an_object"),
        ("json number", b"42", "not_an_object"),
        ("json null", b"null", "not_an_object"),
        ("invalid utf-8", b'{"body": "\xff\xfe", "x": ' + str(n).encode() + b"}", "not_utf8"),
        ("body not base64", raw(bad_b64), "bad_body_encoding"),
        ("no properties", raw(envelope(queue=queue, drop=("properties",))), "bad_envelope"),
        ("huge garbage", b"x" * HUGE, "not_json"),
        ("body base64 of non-json", raw(envelope(body=b"not json {", queue=queue)),
         "undecodable_body"),
        ("body of invalid utf-8", raw(envelope(body=b'[["\xff"], {}, {}]', queue=queue)),
         "undecodable_body"),
        ("no headers", raw(envelope(queue=queue, drop=("headers",))), "not_a_task"),
        ("unknown task", raw(envelope("headswap.no_such_task", queue=queue)), "unknown_task"),
        ("pickle", raw(envelope(body=b"\x80\x04K\x01.", queue=queue,
                                content_type="application/x-python-serialize")),
         "refused_content_type"),
        ("yaml", raw(envelope(body=b"- []\n- {}\n- {}\n", queue=queue,
                              content_type="application/x-yaml")), "refused_content_type"),
        ("bad compression", raw(compressed), "undecodable_body"),
        ("no id header", raw(no_id), "invalid_task"),
        ("task name a list", raw(odd_name), "invalid_task"),
        ("body not [args, kwargs, embed]", raw(envelope(body=b'["x", 3, 4]', queue=queue)),
         "not_a_task_body"),
        ("no content type", raw(no_type), "not_a_task_body"),
    ]
