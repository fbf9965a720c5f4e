"""Pure pieces of the receiver: when a buffered request is complete, the uniform
decryption, the bounded body read and the envelope's refusal of absurd fields."""

from __future__ import annotations

import io
import json

import pytest

from worker import webhook_crypto
from worker.webhook import MAX_BODY_BYTES, _envelope, read_body
from worker.wsgi_server import MORE, READY, REJECT, request_state

HEAD = b"POST /webhooks/akool HTTP/1.1\r\nHost: x\r\n"
CAP = 1024


@pytest.mark.parametrize(("raw", "expected"), [
    (HEAD, (MORE, False)),
    (HEAD + b"Content-Length: 5\r\n\r\nabc", (MORE, False)),
    (HEAD + b"Content-Length: 5\r\n\r\nabcde", (READY, False)),
    (HEAD + b"Content-Length: 99999\r\n\r\n", (READY, True)),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", (MORE, False)),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", (READY, False)),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n", (MORE, False)),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n401\r\n" + b"x" * 10, (READY, True)),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", (READY, False)),
    (HEAD + b"X: " + b"a" * 20_000, (REJECT, False)),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", (READY, False)),
])
def test_a_request_is_handed_to_a_thread_only_once_complete(raw, expected):
    assert request_state(raw, CAP, 16 * 1024) == expected


def test_uniform_decryption_agrees_with_the_plain_one():
    cid, secret = "TESTCLIENTID0001", "TESTSECRETKEY0123456789A"
    data = webhook_crypto.encrypt(b'{"a":1}', cid, secret, pad="strict")
    plain, ok = webhook_crypto.decrypt_uniform(data, secret.encode(), cid.encode())
    assert ok and plain == b'{"a":1}'
    for bad in ("!!", "QUJD", data[:-4] + "AAA="):
        _, ok = webhook_crypto.decrypt_uniform(bad, secret.encode(), cid.encode())
        assert not ok


def test_a_body_is_read_up_to_the_cap_and_no_further():
    class Counting(io.BytesIO):
        taken = 0

        def read(self, n=-1):
            out = super().read(n)
            Counting.taken += len(out)
            return out

    stream = Counting(b"x" * (10 * MAX_BODY_BYTES))
    chunked = {"wsgi.input": stream, "wsgi.input_terminated": True}  # no Content-Length
    assert read_body(chunked, MAX_BODY_BYTES) is None
    assert Counting.taken == MAX_BODY_BYTES + 1
    assert read_body({"wsgi.input": io.BytesIO(b"abc"), "wsgi.input_terminated": True},
                     MAX_BODY_BYTES) == b"abc"
    assert read_body({"CONTENT_LENGTH": "2", "wsgi.input": io.BytesIO(b"abc")},
                     MAX_BODY_BYTES) == b"ab"
    assert read_body({"CONTENT_LENGTH": str(MAX_BODY_BYTES + 1),
                      "wsgi.input": io.BytesIO()}, MAX_BODY_BYTES) is None


@pytest.mark.parametrize("raw", [
    '{"signature":"a","dataEncrypt":"b","nonce":"1","timestamp":1' + "0" * 400 + "}",
    '{"signature":"a","dataEncrypt":"b","nonce":"1","timestamp":"1' + "0" * 400 + '"}',
    '{"signature":"a","dataEncrypt":"b","nonce":"1","timestamp":1e308}',
    '{"signature":"a","dataEncrypt":"b","nonce":"1","timestamp":-5}',
    '{"signature":"a","dataEncrypt":"b","nonce":"1","timestamp":NaN}',
    '{"signature":"a","dataEncrypt":"b","nonce":"1","timestamp":Infinity}',
    '{"signature":"a","dataEncrypt":"b","nonce":1' + "0" * 400 + ',"timestamp":1}',
    '{"signature":1,"dataEncrypt":"b","nonce":"1","timestamp":1}',
    '{"signature":"a","dataEncrypt":"b","nonce":true,"timestamp":1}',
    "[" * 50_000 + "]" * 50_000,
])
def test_absurd_fields_are_unusable_not_errors(raw):
    fields, ok = _envelope(raw.encode())
    assert not ok and set(fields) == {"signature", "dataEncrypt", "timestamp", "nonce"}
    json.dumps(fields)  # fillers stand in: the same work follows
