"""What is wrong with a queue entry, named from its bytes alone (worker.broker.envelope)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kombu import Connection
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import loads

from tests.support.poison import bad_entries, envelope, raw
from worker.broker import envelope as env

TRANSPORT_REASONS = {env.NOT_UTF8, env.NOT_JSON, env.NOT_AN_OBJECT, env.BAD_ENVELOPE,
                     env.BAD_BODY_ENCODING}


@pytest.mark.parametrize(("kind", "entry", "reason"), bad_entries(), ids=lambda x: str(x)[:20])
def test_every_bad_entry_kind_is_named_by_the_layer_that_can_see_it(kind, entry, reason):
    expected = reason if reason in TRANSPORT_REASONS else None
    assert env.check(entry) == expected, kind


def test_a_celery_envelope_passes_whatever_its_task_or_content_type():
    assert env.check(raw(envelope())) is None
    assert env.check(raw(envelope("x.y", content_type="application/x-yaml"))) is None


@pytest.mark.parametrize("mutate", [
    lambda e: e["properties"].pop("delivery_tag"),
    lambda e: e["properties"].update(delivery_tag=7),
    lambda e: e["properties"].pop("delivery_info"),
    lambda e: e["properties"]["delivery_info"].pop("routing_key"),
    lambda e: e.update(properties=[1]),
    lambda e: e.update(headers=["task"]),
])
def test_an_envelope_without_what_kombu_reads_is_a_bad_envelope(mutate):
    e = envelope()
    mutate(e)
    assert env.check(raw(e)) == env.BAD_ENVELOPE


@pytest.mark.parametrize(("encoding", "body", "reason"), [
    ("base64", "bm90IGpzb24=", None),
    ("base64", "abc", env.BAD_BODY_ENCODING),
    ("base64", 42, env.BAD_BODY_ENCODING),
    ("rot13", "abc", env.BAD_BODY_ENCODING),
    ("utf-8", "[[], {}, {}]", None),
    (None, "[[], {}, {}]", None),
    ("base64", "", None),  # kombu decodes only a non-empty body
])
def test_a_body_is_decoded_with_kombus_own_codecs(encoding, body, reason):
    e = envelope()
    e["body"], e["properties"]["body_encoding"] = body, encoding
    assert env.check(raw(e)) == reason


def test_kombus_json_type_hooks_that_fail_make_not_json():
    assert env.check(json.dumps({"__type__": "datetime", "__value__": "never"}).encode()) \
        == env.NOT_JSON


def test_a_preview_shows_an_envelopes_task_never_its_body_and_redacts_urls():
    secret = raw(envelope("headswap.submit", b'[[], {"video_url": "https://h/v?sig=S3CRET"}, {}]'))
    shown = env.preview(secret)
    assert "task=headswap.submit" in shown and "S3CRET" not in shown
    shown = env.preview(b"oops\x00 https://user:pw@cdn.example.com/a.mp4?X-Amz-Signature=S3CRET")
    assert "S3CRET" not in shown and "pw" not in shown and "\\x00" in shown
    assert len(env.preview(b"y" * 10_000)) <= env.PREVIEW_CHARS


def test_an_entry_id_is_the_plain_delivery_tag_or_a_digest_of_an_odd_one():
    assert env.entry_id("2f0c6c1e-aaaa-bbbb-cccc-0123456789ab") == \
        "2f0c6c1e-aaaa-bbbb-cccc-0123456789ab"
    odd = env.entry_id("{p}:job:x y")
    assert odd == env.entry_id("{p}:job:x y") and len(odd) == 32 and ":" not in odd
    assert env.entry_id() != env.entry_id()


@pytest.mark.parametrize(("body", "ok"), [
    ([[], {}, {}], True), ([["a"], {"k": 1}, {"callbacks": None}], True),
    (["x", 3, 4], False), ({"args": []}, False), ([[], {}], False), ([[], [], {}], False),
    ("[[], {}, {}]", False), ([[], {}, None], False),
])
def test_a_task_body_is_args_kwargs_embed(body, ok):
    assert env.is_task_body(body) is ok


# --- whatever the bytes: check() never raises, and what it passes kombu can read ----------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                               max_size=3),
    max_leaves=8,
)
ENVELOPE_PARTS = ("body", "content-type", "content-encoding", "headers", "properties")
PROPERTY_PARTS = ("delivery_tag", "delivery_info", "body_encoding")


@st.composite
def mangled_envelopes(draw) -> bytes:
    """A real envelope with some of its parts (and its properties' parts) replaced by any
    JSON value or removed."""
    e = envelope()
    for part in draw(st.lists(st.sampled_from(ENVELOPE_PARTS), max_size=3)):
        e[part] = draw(json_values)
    if isinstance(e.get("properties"), dict):
        for part in draw(st.lists(st.sampled_from(PROPERTY_PARTS), max_size=2)):
            e["properties"][part] = draw(json_values)
    for part in draw(st.lists(st.sampled_from(ENVELOPE_PARTS), max_size=1)):
        e.pop(part, None)
    return json.dumps(e).encode()


def kombu_reads(entry: bytes) -> None:
    """What kombu's Redis channel does with a popped entry before any consumer callback:
    read it, build its virtual Message, and index it as unacked (QoS.append's reads)."""
    with Connection("memory://") as conn:
        channel = conn.default_channel
        message = channel.Message(loads(bytes_to_str(entry)), channel=channel)
        assert message.errors == [] or message.headers.get("compression")
        info = message.delivery_info
        hash(message.delivery_tag), info["exchange"], info["routing_key"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64) | mangled_envelopes())
def test_whatever_the_bytes_check_names_a_reason_or_kombu_can_read_them(entry):
    reason = env.check(entry)
    assert reason is None or reason in TRANSPORT_REASONS
    if reason is None:
        kombu_reads(entry)  # raises if the classifier let through what kombu cannot read
