"""The retry rules: which class each Akool outcome becomes, with no network."""

import pytest

from worker import classify, timing
from worker.errors import (
    AkoolAmbiguous,
    AkoolAuthError,
    AkoolFatal,
    AkoolInsufficientCredits,
    AkoolNotFound,
    AkoolRetryable,
)


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_statuses_are_retryable_even_on_create(status):
    err = classify.for_http_status(status, {"Retry-After": "7"}, unsafe=True, operation="create")
    assert isinstance(err, AkoolRetryable)
    assert err.retry_after == 7.0
    assert err.http_status == status


@pytest.mark.parametrize("status", [500, 502, 504])
def test_other_5xx_on_create_is_ambiguous_but_retryable_on_reads(status):
    assert isinstance(classify.for_http_status(status, {}, unsafe=True, operation="create"),
                      AkoolAmbiguous)
    assert isinstance(classify.for_http_status(status, {}, unsafe=False, operation="detail"),
                      AkoolRetryable)


def test_4xx_is_fatal_and_200_reads_the_body():
    assert isinstance(classify.for_http_status(400, {}, unsafe=True, operation="c"), AkoolFatal)
    assert isinstance(classify.for_http_status(401, {}, unsafe=True, operation="c"),
                      AkoolAuthError)
    assert classify.for_http_status(200, {}, unsafe=True, operation="c") is None


@pytest.mark.parametrize("code,cls", [
    (1005, AkoolRetryable),
    (1104, AkoolInsufficientCredits),
    (1101, AkoolAuthError),
    (1102, AkoolAuthError),
    (1200, AkoolAuthError),
    (1014, AkoolNotFound),
    (1003, AkoolFatal),
    (1204, AkoolFatal),
    (9999, AkoolFatal),
])
def test_business_codes_map_to_their_class(code, cls):
    err = classify.for_code(code, "m", unsafe=True, operation="create")
    assert type(err) is cls
    assert err.code == code and err.msg == "m"


def test_server_error_code_is_retryable_on_reads_and_fatal_on_create():
    assert isinstance(classify.for_code(2001, None, unsafe=False, operation="d"), AkoolRetryable)
    assert type(classify.for_code(2001, None, unsafe=True, operation="c")) is AkoolFatal


def test_success_code_is_not_an_error():
    assert classify.for_code(1000, "OK", unsafe=True, operation="c") is None


def test_retry_after_accepts_seconds_and_http_dates():
    assert timing.parse_retry_after("3") == 3.0
    assert timing.parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480) == 10.0
    assert timing.parse_retry_after("soon") is None
    assert timing.parse_retry_after(None) is None
