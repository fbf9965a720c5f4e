"""Akool webhook crypto, exactly as section 8 of the API reference describes it.

- signature = lowercase hex SHA-1 of ``"".join(sorted([client_id, str(timestamp),
  str(nonce), data_encrypt]))`` — every input stringified before sorting.
- ``dataEncrypt`` = base64(AES-CBC(key=utf8(client_secret), iv=utf8(client_id),
  PKCS#7 padding on 16-byte blocks)).

The key must be 16, 24 or 32 bytes (AES-128/192/256; the docs say 24). The IV must be
16 bytes: a longer client id is truncated to 16 (the docs' Python sample does this), a
shorter one is padded with zero bytes (the docs) or spaces (Akool's demo code), chosen by
``HEADSWAP_WEBHOOK_IV_PADDING``. ``strict`` refuses anything but exactly 16 bytes; the
sandbox uses it so it never guesses.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from worker.errors import HeadswapError

IvPadding = Literal["zero", "space", "strict"]

_BLOCK_BITS = 128
_KEY_LENGTHS = (16, 24, 32)


class WebhookCryptoError(HeadswapError):
    """A delivery cannot be verified or decrypted (bad signature, key, ciphertext or JSON)."""


@dataclass(frozen=True)
class Delivery:
    """The body Akool POSTs to ``webhookUrl``."""

    signature: str
    data_encrypt: str
    timestamp: int
    nonce: str

    def to_json(self) -> dict[str, Any]:
        return {
            "signature": self.signature,
            "dataEncrypt": self.data_encrypt,
            "timestamp": self.timestamp,
            "nonce": self.nonce,
        }


def derive_key(client_secret: str) -> bytes:
    key = client_secret.encode("utf-8")
    if len(key) not in _KEY_LENGTHS:
        raise WebhookCryptoError(
            f"client secret must be 16, 24 or 32 bytes for AES, got {len(key)} bytes"
        )
    return key


def derive_iv(client_id: str, pad: IvPadding = "zero") -> bytes:
    raw = client_id.encode("utf-8")
    if len(raw) == 16:
        return raw
    if pad == "strict":
        raise WebhookCryptoError(f"client id must be exactly 16 bytes, got {len(raw)} bytes")
    if len(raw) > 16:
        return raw[:16]
    return raw.ljust(16, b"\x00" if pad == "zero" else b" ")


def sign(client_id: str, timestamp: int | str, nonce: int | str, data_encrypt: str) -> str:
    parts = sorted([client_id, str(timestamp), str(nonce), data_encrypt])
    return hashlib.sha1("".join(parts).encode("utf-8"), usedforsecurity=False).hexdigest()


def verify_signature(
    client_id: str, timestamp: int | str, nonce: int | str, data_encrypt: str, signature: str
) -> bool:
    """Constant-time comparison of the expected and the given signature."""
    expected = sign(client_id, timestamp, nonce, data_encrypt)
    return hmac.compare_digest(expected.encode("ascii"), signature.strip().lower().encode("utf-8"))


def encrypt(plaintext: bytes, client_id: str, client_secret: str, pad: IvPadding = "zero") -> str:
    padder = padding.PKCS7(_BLOCK_BITS).padder()
    padded = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.AES(derive_key(client_secret)), modes.CBC(derive_iv(client_id, pad)))
    encryptor = enc.encryptor()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode("ascii")


def decrypt(
    data_encrypt: str, client_id: str, client_secret: str, pad: IvPadding = "zero"
) -> bytes:
    try:
        ct = base64.b64decode(data_encrypt, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WebhookCryptoError("dataEncrypt is not valid base64") from exc
    if not ct or len(ct) % 16:
        raise WebhookCryptoError("dataEncrypt is not a whole number of AES blocks")
    dec = Cipher(
        algorithms.AES(derive_key(client_secret)), modes.CBC(derive_iv(client_id, pad))
    ).decryptor()
    padded = dec.update(ct) + dec.finalize()
    unpadder = padding.PKCS7(_BLOCK_BITS).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError as exc:
        raise WebhookCryptoError("bad padding: wrong key or tampered ciphertext") from exc


#: Decrypted when ``dataEncrypt`` is not base64 or not whole blocks: the same work is done.
_FILLER_BLOCKS = bytes(64)


def decrypt_uniform(data_encrypt: str, key: bytes, iv: bytes) -> tuple[bytes, bool]:
    """Decode, decrypt and unpad with the same steps whatever is wrong with the input.

    Returns ``(plaintext, ok)``. Nothing raises and nothing returns early: bad base64, a
    partial block and a bad padding all decrypt something and check a padding, so the
    caller can fold ``ok`` into one verdict (no padding oracle, API reference 8.2).
    """
    ok = True
    try:
        ct = base64.b64decode(data_encrypt, validate=True)
    except (binascii.Error, ValueError):
        ct, ok = b"", False
    if not ct or len(ct) % 16:
        ok = False
        ct = ct[: len(ct) - len(ct) % 16] or _FILLER_BLOCKS
    dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = dec.update(ct) + dec.finalize()
    n = padded[-1]
    bad = int(n == 0) | int(n > 16)
    for i, byte in enumerate(reversed(padded[-16:])):
        bad |= (byte ^ n) * int(i < n)
    cut = n if bad == 0 else 0
    return padded[: len(padded) - cut], ok and bad == 0


def seal(
    payload: dict[str, Any],
    client_id: str,
    client_secret: str,
    *,
    timestamp: int,
    nonce: str,
    pad: IvPadding = "zero",
) -> Delivery:
    """Encrypt and sign a payload as Akool does (the sandbox's side of the exchange)."""
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    data_encrypt = encrypt(body, client_id, client_secret, pad)
    return Delivery(
        signature=sign(client_id, timestamp, nonce, data_encrypt),
        data_encrypt=data_encrypt,
        timestamp=timestamp,
        nonce=str(nonce),
    )


def open_delivery(
    body: dict[str, Any], client_id: str, client_secret: str, pad: IvPadding = "zero"
) -> dict[str, Any]:
    """Verify and decrypt a delivery body; return the decrypted payload.

    Raises :class:`WebhookCryptoError` for a missing field, a bad signature (checked first,
    before any decryption work) or an undecryptable/non-JSON payload.
    """
    try:
        signature = body["signature"]
        data_encrypt = body["dataEncrypt"]
        timestamp = body["timestamp"]
        nonce = body["nonce"]
    except (KeyError, TypeError) as exc:
        raise WebhookCryptoError(f"delivery is missing field {exc}") from None
    if (
        not all(isinstance(v, str) for v in (signature, data_encrypt))
        or not isinstance(timestamp, int | str)
        or not isinstance(nonce, int | str)
        or isinstance(timestamp, bool)
    ):
        raise WebhookCryptoError("delivery fields have the wrong types")
    if not verify_signature(client_id, timestamp, nonce, data_encrypt, signature):
        raise WebhookCryptoError("signature does not match")
    plaintext = decrypt(data_encrypt, client_id, client_secret, pad)
    try:
        payload = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WebhookCryptoError("decrypted payload is not JSON") from exc
    if not isinstance(payload, dict):
        raise WebhookCryptoError("decrypted payload is not a JSON object")
    return payload
