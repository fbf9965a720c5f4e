"""Section 8 of the API reference: signature and AES, proven with our 8.5 vector."""

import pytest

from worker import webhook_crypto as wc

CLIENT_ID = "TESTCLIENTID0001"
SECRET = "TESTSECRETKEY0123456789A"
PAYLOAD = {
    "_id": "6a066dc58570ecbf64f761a5",
    "status": 3,
    "type": "headswap",
    "url": "https://example.com/output/result.mp4",
}
VECTOR_DATA = (
    "GT1Cu9+/CaZ4HpE6dtZZlelM47ZuIZs9Om8YpGTRRvPSszVOolyi2p6aDtjyYdAjeJw4Gbjz4ad6Lmyk79Kp0hIZoIRb"
    "oOS4v+90fIjNL8SM2pufT0pjEBCNTylOnu+LL9862HLJu+WUe0b65fOI6A=="
)
VECTOR_SIGNATURE = "c1f5fbc190ea3e0658c21d364741d90d1cd24178"


def test_sealing_the_reference_payload_reproduces_the_8_5_vector_exactly():
    delivery = wc.seal(PAYLOAD, CLIENT_ID, SECRET, timestamp=1710757981609, nonce="1529")
    assert delivery.data_encrypt == VECTOR_DATA
    assert delivery.signature == VECTOR_SIGNATURE


def test_opening_the_8_5_vector_yields_the_payload():
    body = {"signature": VECTOR_SIGNATURE, "dataEncrypt": VECTOR_DATA,
            "timestamp": 1710757981609, "nonce": "1529"}
    assert wc.open_delivery(body, CLIENT_ID, SECRET) == PAYLOAD


def test_numeric_nonce_signs_like_the_string_form():
    # The docs show nonce both as "1529" and 1529; both must stringify before sorting.
    assert wc.sign(CLIENT_ID, 1710757981609, 1529, VECTOR_DATA) == VECTOR_SIGNATURE


@pytest.mark.parametrize("field,value", [
    ("signature", "0" * 40),
    ("dataEncrypt", VECTOR_DATA[:-8] + "AAAAAA=="),
    ("timestamp", 1710757981610),
    ("nonce", "1530"),
])
def test_any_tampered_field_is_refused(field, value):
    body = {"signature": VECTOR_SIGNATURE, "dataEncrypt": VECTOR_DATA,
            "timestamp": 1710757981609, "nonce": "1529", field: value}
    with pytest.raises(wc.WebhookCryptoError, match="signature"):
        wc.open_delivery(body, CLIENT_ID, SECRET)


def test_correctly_signed_garbage_is_refused_at_decryption():
    data = "QUFBQUFBQUFBQUFBQUFBQQ=="  # one block of "A"s: bad padding after decrypt
    body = {"signature": wc.sign(CLIENT_ID, 1, "n", data), "dataEncrypt": data,
            "timestamp": 1, "nonce": "n"}
    with pytest.raises(wc.WebhookCryptoError):
        wc.open_delivery(body, CLIENT_ID, SECRET)


def test_missing_field_is_named():
    with pytest.raises(wc.WebhookCryptoError, match="nonce"):
        wc.open_delivery({"signature": "x", "dataEncrypt": "y", "timestamp": 1}, CLIENT_ID, SECRET)


@pytest.mark.parametrize("pad,expected", [("zero", b"short" + b"\x00" * 11),
                                          ("space", b"short" + b" " * 11)])
def test_short_client_id_is_padded_by_the_configured_rule(pad, expected):
    assert wc.derive_iv("short", pad) == expected


def test_long_client_id_is_truncated_to_16_bytes_and_strict_refuses_it():
    assert wc.derive_iv("AKDt8rWEczpYPzCGur2xE=", "zero") == b"AKDt8rWEczpYPzCG"
    with pytest.raises(wc.WebhookCryptoError, match="16 bytes"):
        wc.derive_iv("AKDt8rWEczpYPzCGur2xE=", "strict")


def test_key_must_be_an_aes_length():
    with pytest.raises(wc.WebhookCryptoError, match="16, 24 or 32"):
        wc.derive_key("x" * 20)


def test_space_and_zero_padding_do_not_decrypt_each_others_deliveries():
    d = wc.seal(PAYLOAD, "shortid", SECRET, timestamp=1, nonce="2", pad="space")
    assert wc.open_delivery(d.to_json(), "shortid", SECRET, pad="space") == PAYLOAD
    with pytest.raises(wc.WebhookCryptoError):
        wc.open_delivery(d.to_json(), "shortid", SECRET, pad="zero")
