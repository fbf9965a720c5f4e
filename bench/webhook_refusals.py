"""How long the receiver works on a refused delivery, by kind of failure, in-process.

``python -m bench.webhook_refusals`` times :meth:`worker.webhook.Opener.open` (every check,
none skipped) for each kind, many times, and prints the median and p90 in microseconds
and the spread between kinds. Over HTTP the refusal floor
(``HEADSWAP_WEBHOOK_REFUSAL_FLOOR_MS``) sits on top of this; the integration test
``test_every_refusal_gets_one_identical_answer`` prints the over-the-wire figures.
"""

from __future__ import annotations

import base64
import json
import statistics
import sys
import time

from worker import webhook_crypto
from worker.webhook import Opener

CLIENT_ID = "TESTCLIENTID0001"
SECRET = "TESTSECRETKEY0123456789A"  # the API reference's test vector key


def _signed(data: str, ts: int | None = None, nonce: str = "1529") -> dict[str, object]:
    ts = int(time.time() * 1000) if ts is None else ts
    return {"signature": webhook_crypto.sign(CLIENT_ID, ts, nonce, data), "dataEncrypt": data,
            "timestamp": ts, "nonce": nonce}


def _sealed(plaintext: bytes, **kw: object) -> dict[str, object]:
    return _signed(webhook_crypto.encrypt(plaintext, CLIENT_ID, SECRET, pad="strict"), **kw)  # type: ignore[arg-type]


def _oracle_pair(data_encrypt: str) -> tuple[str, str]:
    ct = bytes(base64.b64decode(data_encrypt))
    found: dict[bool, str] = {}
    for flip in range(1, 256):
        tampered = bytearray(ct)
        tampered[-17] ^= flip
        text = base64.b64encode(bytes(tampered)).decode()
        try:
            webhook_crypto.decrypt(text, CLIENT_ID, SECRET, pad="strict")
            found.setdefault(True, text)
        except webhook_crypto.WebhookCryptoError:
            found.setdefault(False, text)
    return found[True], found[False]


def kinds() -> dict[str, bytes]:
    payload = json.dumps({"_id": "6a066dc58570ecbf64f761a5", "status": 3,
                          "url": "https://example.com/output/result.mp4"}).encode()
    good = _sealed(payload)
    pad_ok, pad_bad = _oracle_pair(str(good["dataEncrypt"]))
    dump = lambda d: json.dumps(d).encode()  # noqa: E731
    out = {
        "valid (accepted)": dump(good),
        # What a padding-oracle attacker sends: the same ciphertext with one byte of the
        # next-to-last block changed, once giving a valid padding, once not.
        "oracle: padding valid": dump(_signed(pad_ok)),
        "oracle: bad padding": dump(_signed(pad_bad)),
        "bad base64": dump(_signed("!!!not*base64!!!" * 6)),
        "bad JSON plaintext": dump(_sealed(b"x" * len(payload))),
        "wrong signature": dump({**good, "signature": "0" * 40}),
        "stale timestamp": dump(_sealed(payload, ts=1)),
        "timestamp 10^400": json.dumps({**good, "timestamp": 0}).replace(
            '"timestamp": 0', '"timestamp": 1' + "0" * 400).encode(),
        "timestamp NaN": json.dumps({**good, "timestamp": 0}).replace(
            '"timestamp": 0', '"timestamp": NaN').encode(),
        "deep nesting": b'{"signature": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
        "not JSON": b"{",
    }
    return out


def measure(rounds: int = 2000) -> dict[str, tuple[float, float]]:
    opener = Opener(CLIENT_ID, SECRET, "strict", 300.0)
    bodies = kinds()
    assert opener.open(bodies["valid (accepted)"]).payload is not None
    assert all(opener.open(b).payload is None for k, b in bodies.items() if k != "valid (accepted)")
    samples: dict[str, list[float]] = {k: [] for k in bodies}
    for _ in range(rounds):  # interleaved, so that machine noise hits every kind alike
        for name, body in bodies.items():
            started = time.perf_counter()
            opener.open(body)
            samples[name].append((time.perf_counter() - started) * 1e6)
    return {k: (statistics.median(v), sorted(v)[int(len(v) * 0.9)]) for k, v in samples.items()}


def main() -> int:
    figures = measure()
    for name, (median, p90) in sorted(figures.items(), key=lambda x: x[1][0]):
        print(f"{name:22s} median {median:7.1f} µs   p90 {p90:7.1f} µs")
    refused = [m for k, (m, _) in figures.items() if k != "valid (accepted)"
               and k != "deep nesting"]
    print(f"spread of medians over same-size refusals: {max(refused) - min(refused):.1f} µs")
    oracle = figures["oracle: padding valid"][0] - figures["oracle: bad padding"][0]
    print(f"padding valid minus bad padding (the oracle's question): {oracle:+.1f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
