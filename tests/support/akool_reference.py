"""An independent implementation of Akool's webhook delivery (section 8 of the API
reference), written from the document alone and sharing no code with ``worker``: used to
prove our receiver accepts what any faithful implementation produces."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes


def pkcs7(data: bytes, block: int = 16) -> bytes:
    n = block - len(data) % block
    return data + bytes([n]) * n


def deliver(payload: dict, client_id: str, client_secret: str) -> dict:
    iv = client_id.encode()[:16].ljust(16, b"\0")
    enc = Cipher(algorithms.AES(client_secret.encode()), modes.CBC(iv)).encryptor()
    body = json.dumps(payload).encode()  # default separators: differs from the sandbox's
    data_encrypt = base64.b64encode(enc.update(pkcs7(body)) + enc.finalize()).decode()
    timestamp = int(time.time() * 1000)
    nonce = secrets.randbelow(10**6)  # a number, as in the docs' later example
    joined = "".join(sorted([client_id, str(timestamp), str(nonce), data_encrypt]))
    return {"signature": hashlib.sha1(joined.encode()).hexdigest(),
            "dataEncrypt": data_encrypt, "timestamp": timestamp, "nonce": nonce}
