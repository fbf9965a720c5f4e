"""HTTP callbacks without a network: signing, the address policy, backoff, and one delivery
attempt against a stand-in HTTP session (Redis is the test's own redis-server)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time

import pytest
import requests
from headswap_client import states

from config.settings import load_settings, redact_url
from tests.support.dispatch import RecordingDispatcher
from worker import callbacks, notify
from worker.callbacks import (
    delivery,
    headers_for,
    new_secret,
    parse_secret,
    sign,
    verify_callback_signature,
)
from worker.callbacks.addresses import (
    BlockedAddress,
    address_allowed,
    parse_networks,
    resolve_checked,
)
from worker.callbacks.delivery import classify_status
from worker.callbacks.transport import PinnedHostAdapter, parse_target
from worker.errors import ConfigError
from worker.timing import retry_delay

#: Standard Webhooks secrets (``whsec_`` + base64 of 32 bytes), as a producer holds them.
SECRET = "whsec_" + base64.b64encode(b"cb-secret-for-tests-0123456789ab").decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"the-secret-before-the-rotation!!").decode()
KEY = parse_secret(SECRET)
BODY = b'{"job_id":"j1","state":"succeeded"}'
NOW = 1_700_000_000
MSG_ID = "j1:succeeded"


def signed_headers(keys=(KEY,), msg_id=MSG_ID, ts=NOW, body=BODY):
    return headers_for(list(keys), msg_id, ts, body)


# --- signing ------------------------------------------------------------------------------


def test_the_signature_is_base64_hmac_sha256_of_id_dot_timestamp_dot_body():
    """What a producer in any language computes with its standard HMAC (Standard Webhooks)."""
    mac = hmac.new(KEY, f"{MSG_ID}.{NOW}.".encode() + BODY, hashlib.sha256).digest()
    assert sign([KEY], MSG_ID, NOW, BODY) == "v1," + base64.b64encode(mac).decode()
    headers = signed_headers()
    assert headers == {"webhook-id": MSG_ID, "webhook-timestamp": str(NOW),
                       "webhook-signature": sign([KEY], MSG_ID, NOW, BODY)}


def test_the_standardwebhooks_library_verifies_what_we_sign():
    from standardwebhooks import Webhook

    now = int(time.time())
    headers = signed_headers(ts=now)
    assert Webhook(SECRET).verify(BODY, headers) == {"job_id": "j1", "state": "succeeded"}


def test_a_fresh_untampered_delivery_verifies():
    headers = signed_headers()
    assert verify_callback_signature(SECRET, headers, BODY, 300, now=NOW + 10)
    assert verify_callback_signature([SECRET], headers, BODY.decode(), 300, now=NOW - 10)
    upper = {k.upper(): v for k, v in headers.items()}  # header names have no case
    assert verify_callback_signature(SECRET, upper, BODY, now=NOW)


@pytest.mark.parametrize("case", ["body", "secret", "timestamp", "id", "signature", "old",
                                  "future"])
def test_anything_wrong_fails_verification(case):
    headers = signed_headers()
    args = {"secrets": SECRET, "headers": headers, "body": BODY, "tolerance": 300,
            "now": NOW}
    if case == "body":
        args["body"] = BODY.replace(b"succeeded", b"failed")
    elif case == "secret":
        args["secrets"] = OLD_SECRET
    elif case == "timestamp":  # a replay with a new timestamp but the old signature
        args["headers"] = {**headers, "webhook-timestamp": str(NOW + 1)}
        args["now"] = NOW + 1
    elif case == "id":  # another event's id with this event's signature
        args["headers"] = {**headers, "webhook-id": "j1:failed"}
    elif case == "signature":
        sig = headers["webhook-signature"]
        args["headers"] = {**headers, "webhook-signature": sig[:-4] + (
            "AAA=" if not sig.endswith("AAA=") else "BBB=")}
    elif case == "old":
        args["now"] = NOW + 301
    elif case == "future":
        args["now"] = NOW - 301
    assert verify_callback_signature(**args) is False


@pytest.mark.parametrize("signature", ["", "v1,", "v1,@@@", "v2," + "A" * 44, "garbage",
                                       "v1," + "A" * 44, "v1=" + "00" * 32])
def test_malformed_headers_and_timestamps_are_refused_without_raising(signature):
    headers = {**signed_headers(), "webhook-signature": signature}
    assert verify_callback_signature(SECRET, headers, BODY, now=NOW) is False
    good = signed_headers()
    for stamp in ("not-a-number", "", "1e9", "-1", "1" * 5000, "\u0661"):
        bad = {**good, "webhook-timestamp": stamp}
        assert verify_callback_signature(SECRET, bad, BODY, now=NOW) is False
    assert verify_callback_signature(SECRET, {}, BODY, now=NOW) is False


def test_rotation_every_secret_signs_and_either_verifies():
    """``HEADSWAP_CALLBACK_SECRETS=new,old``: two signatures, space-separated; a receiver
    on the old secret and one on the new both accept, one on neither refuses."""
    headers = signed_headers(keys=(KEY, parse_secret(OLD_SECRET)))
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert verify_callback_signature(SECRET, headers, BODY, now=NOW)
    assert verify_callback_signature(OLD_SECRET, headers, BODY, now=NOW)
    assert verify_callback_signature([OLD_SECRET, SECRET], signed_headers(), BODY, now=NOW)
    assert not verify_callback_signature(new_secret(), headers, BODY, now=NOW)


@pytest.mark.parametrize("secret", ["plain-old-secret-0123456789", "whsec_not base64!",
                                    "whsec_" + base64.b64encode(b"short").decode(), ""])
def test_a_secret_not_in_the_whsec_form_is_a_clear_error(secret):
    with pytest.raises(ValueError, match="callback secret"):
        verify_callback_signature(secret, signed_headers(), BODY, now=NOW)


def test_new_secrets_are_random_and_accepted_by_settings_and_verify():
    one, two = new_secret(), new_secret()
    assert one != two and one.startswith("whsec_") and len(parse_secret(one)) == 32
    s = load_settings({"HEADSWAP_CALLBACK_SECRETS": f"{one}, {two}\n{one}"})
    assert [x.get() for x in s.callback_secrets] == [one, two]  # each once, in order


def test_the_event_id_is_one_per_job_and_terminal_state():
    assert callbacks.event_id("j1", "succeeded") == "j1:succeeded"
    assert callbacks.event_id("j1", "succeeded") != callbacks.event_id("j1", "failed")


# --- the address policy -------------------------------------------------------------------


@pytest.mark.parametrize("ip", [
    "127.0.0.1", "127.1.2.3", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.254",
    "192.168.1.1", "169.254.169.254", "0.0.0.0", "100.64.0.1", "224.0.0.1", "240.0.0.1",
    "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "fec0::1",
])  # fmt: skip
def test_internal_addresses_are_refused(ip):
    assert address_allowed(ip) is False


@pytest.mark.parametrize("ip", ["93.184.216.34", "8.8.8.8", "1.1.1.1",
                                "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.216.34"])
def test_public_addresses_are_allowed(ip):
    assert address_allowed(ip) is True


@pytest.mark.parametrize("ip", [
    "2002:7f00:1::", "2002:a9fe:a9fe::", "2002:c0a8:101::1", "2002:a00:1::",  # 6to4
    "2001:0:808:808:0:0:80ff:fffe",  # Teredo, client 127.0.0.1
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",  # NAT64
])  # fmt: skip
def test_ipv6_transition_addresses_are_judged_by_the_ipv4_they_carry(ip):
    """6to4 addresses are 'global' to Python's ipaddress, yet a 6to4 relay delivers
    2002:7f00:1:: to 127.0.0.1 (issue 11: two SSRF forms passed)."""
    assert address_allowed(ip) is False
    with pytest.raises(BlockedAddress):
        resolve_checked("six.example", 80, (), fake_resolver(ip))


def test_a_6to4_address_carrying_a_public_ipv4_is_allowed():
    assert address_allowed("2002:808:808::1") is True


def test_the_allow_list_opens_exactly_its_networks():
    allowed = parse_networks(["127.0.0.0/8", "10.1.0.0/16", "fd00::/8"])
    assert address_allowed("127.0.0.1", allowed)
    assert address_allowed("::ffff:127.0.0.1", allowed)
    assert address_allowed("10.1.2.3", allowed)
    assert address_allowed("fd00::5", allowed)
    assert not address_allowed("10.2.0.1", allowed)
    assert not address_allowed("192.168.0.1", allowed)
    assert not address_allowed("169.254.169.254", allowed)
    assert not address_allowed("::1", allowed)


def fake_resolver(*answers):
    calls = []

    def resolve(host, port, **kwargs):
        calls.append((host, port))
        family = lambda a: socket.AF_INET6 if ":" in a else socket.AF_INET  # noqa: E731
        return [(family(a), socket.SOCK_STREAM, 6, "", (a, port)) for a in answers]

    resolve.calls = calls
    return resolve


def test_a_name_with_any_internal_address_is_refused_as_a_whole():
    with pytest.raises(BlockedAddress):
        resolve_checked("rebind.example", 80, (), fake_resolver("93.184.216.34", "10.0.0.7"))
    with pytest.raises(BlockedAddress):
        resolve_checked("meta.example", 80, (), fake_resolver("169.254.169.254"))


def test_a_public_name_resolves_to_its_first_checked_address():
    ip = resolve_checked("ok.example", 443, (), fake_resolver("93.184.216.34", "1.1.1.1"))
    assert ip == ipaddress.ip_address("93.184.216.34")


def test_the_allowed_networks_setting_is_validated():
    assert load_settings({}).callback_allowed_networks == ()
    s = load_settings({"HEADSWAP_CALLBACK_ALLOWED_NETWORKS": "127.0.0.0/8, fd00::/8"})
    assert s.callback_allowed_networks == ("127.0.0.0/8", "fd00::/8")
    with pytest.raises(ConfigError, match="CALLBACK_ALLOWED_NETWORKS"):
        load_settings({"HEADSWAP_CALLBACK_ALLOWED_NETWORKS": "127.0.0.0/8,localhost"})


# --- the pinned connection ----------------------------------------------------------------


def test_the_request_goes_to_the_checked_ip_and_names_the_host():
    target = parse_target("https://user:p%40ss@Hooks.Example.com:8443/cb/x?a=1")
    assert target.pinned_url(ipaddress.ip_address("93.184.216.34")) == \
        "https://93.184.216.34:8443/cb/x?a=1"
    assert target.host_header == "hooks.example.com:8443"
    assert target.auth == ("user", "p@ss")
    v6 = parse_target("http://example.com/")
    assert v6.pinned_url(ipaddress.ip_address("2001:db8::1")) == "http://[2001:db8::1]:80/"
    assert v6.host_header == "example.com"
    for bad in ("ftp://example.com/x", "http:///nohost", "http://example.com:99999/"):
        with pytest.raises(ValueError):
            parse_target(bad)


def test_https_verifies_the_certificate_against_the_host_not_the_ip():
    adapter = PinnedHostAdapter()
    request = requests.Request("POST", "https://93.184.216.34:443/cb",
                               headers={"Host": "hooks.example.com"}).prepare()
    host_params, pool_kwargs = adapter.build_connection_pool_key_attributes(request, True)
    assert host_params["host"] == "93.184.216.34"
    assert pool_kwargs["server_hostname"] == "hooks.example.com"
    assert pool_kwargs["assert_hostname"] == "hooks.example.com"


def test_logged_urls_carry_no_credentials_or_query():
    assert redact_url("https://u:pw@h.example:8443/p?token=abc") == "https://***@h.example:8443/p?***"
    assert redact_url("https://h.example/p") == "https://h.example/p"
    assert redact_url("https://[::1]:99/p?X-Amz-Signature=s#frag") == "https://[::1]:99/p?***"
    assert redact_url("https://u:pw@[::1/?t=1") == "<unparseable url>"  # never echoed


# --- retry policy -------------------------------------------------------------------------


class FixedRandom:
    def __init__(self, value):
        self.value = value

    def random(self):
        return self.value


def test_backoff_doubles_up_to_the_cap_with_jitter_between_half_and_full():
    full = [retry_delay(n, base=5, cap=300, rng=FixedRandom(1.0)) for n in range(1, 9)]
    assert full == [5, 10, 20, 40, 80, 160, 300, 300]
    half = [retry_delay(n, base=5, cap=300, rng=FixedRandom(0.0)) for n in range(1, 9)]
    assert half == [2.5, 5, 10, 20, 40, 80, 150, 150]


def test_backoff_honours_retry_after_but_not_beyond_the_cap():
    policy = {"base": 1, "cap": 60, "retry_after_cap": 60, "rng": FixedRandom(0)}
    assert retry_delay(1, retry_after=30, **policy) == 30
    assert retry_delay(1, retry_after=9999, **policy) == 60


@pytest.mark.parametrize(("status", "verdict"), [
    (200, "delivered"), (201, "delivered"), (204, "delivered"), (299, "delivered"),
    (408, "retry"), (429, "retry"), (500, "retry"), (502, "retry"), (503, "retry"),
    (301, "permanent"), (302, "permanent"), (307, "permanent"), (400, "permanent"),
    (401, "permanent"), (403, "permanent"), (404, "permanent"), (410, "permanent"),
    (422, "permanent"),
])  # fmt: skip
def test_status_classes(status, verdict):
    assert classify_status(status) == verdict


# --- one delivery attempt (stand-in HTTP, real Redis) -------------------------------------


class FakeResponse:
    def __init__(self, status, headers=None):
        self.status_code = status
        self.headers = headers or {}

    def close(self):
        pass


class FakeSession:
    """Answers from a script of statuses (or raises exceptions given in it)."""

    def __init__(self, *script):
        self.script = list(script)
        self.calls = []

    def post(self, url, **kwargs):
        self.calls.append({"url": url, **kwargs})
        item = self.script.pop(0) if self.script else 200
        if isinstance(item, Exception):
            raise item
        return FakeResponse(*item) if isinstance(item, tuple) else FakeResponse(item)


@pytest.fixture
def make_rt(redis_server, redis_client):
    from worker.runtime import Runtime

    made = []

    def make(**env):
        base = {"HEADSWAP_REDIS_URL": redis_server.url, "HEADSWAP_KEY_PREFIX": "t",
                "HEADSWAP_CALLBACK_SECRETS": SECRET, "HEADSWAP_CALLBACK_MAX_ATTEMPTS": "3",
                "HEADSWAP_CALLBACK_BACKOFF_BASE_SECONDS": "2",
                "HEADSWAP_CALLBACK_BACKOFF_MAX_SECONDS": "30"}
        recorder = RecordingDispatcher()
        rt = Runtime(load_settings({**base, **env}), recorder)
        rt.sent = recorder.sent
        made.append(rt)
        return rt

    yield make
    for rt in made:
        rt.store.close()


def terminal_job(rt, job_id="j1", url="https://hooks.example.com/cb?k=1",
                 state=states.SUCCEEDED):
    rt.store.create(job_id, {"callback_url": url, "metadata": {"order": 7},
                             "output_url": "https://cdn.example/out.mp4"}, state=state,
                    fingerprint="f")
    return job_id


PUBLIC = fake_resolver("93.184.216.34")


def test_a_2xx_delivers_a_signed_record_once_and_marks_the_job(make_rt):
    rt = make_rt()
    job_id = terminal_job(rt)
    session = FakeSession(204)
    outcome = delivery.deliver(rt, job_id, session=session, resolver=PUBLIC)
    assert outcome.status == "delivered"
    [call] = session.calls
    assert call["url"] == "https://93.184.216.34:443/cb?k=1"
    assert call["allow_redirects"] is False
    assert call["timeout"] == (3.0, 10.0)
    headers = call["headers"]
    assert headers["Host"] == "hooks.example.com"
    assert headers["Content-Type"] == "application/json"
    assert headers["webhook-id"] == f"{job_id}:succeeded"
    assert headers["X-Headswap-Delivery-Attempt"] == "1"
    assert verify_callback_signature(SECRET, headers, call["data"])
    body = json.loads(call["data"])
    assert body["job_id"] == job_id and body["state"] == "succeeded"
    assert body["metadata"] == {"order": 7}
    assert not any(k.startswith("callback_") and k != "callback_url" for k in body)
    record = rt.store.get(job_id)
    assert record["callback_status"] == "delivered"
    assert int(record["callback_attempts"]) == 1
    # a second run (a redelivered message) sends nothing
    assert delivery.deliver(rt, job_id, session=session, resolver=PUBLIC).status == "skipped"
    assert len(session.calls) == 1


def test_retryable_failures_back_off_then_dead_letter_after_max_attempts(make_rt):
    rt = make_rt()
    job_id = terminal_job(rt)
    session = FakeSession(500, (429, {"Retry-After": "7"}), requests.ConnectTimeout("x"))
    first = delivery.deliver(rt, job_id, session=session, resolver=PUBLIC,
                              rng=FixedRandom(1.0))
    assert (first.status, first.retry_in) == ("retry", 2.0)
    assert rt.store.get(job_id)["callback_status"] == "pending"
    second = delivery.deliver(rt, job_id, session=session, resolver=PUBLIC,
                               rng=FixedRandom(1.0))
    assert (second.status, second.retry_in) == ("retry", 7.0)  # Retry-After wins over 4 s
    third = delivery.deliver(rt, job_id, session=session, resolver=PUBLIC)
    assert third.status == "dead" and third.reason == "attempts_exhausted"
    event_ids = [c["headers"]["webhook-id"] for c in session.calls]
    assert event_ids == [f"{job_id}:succeeded"] * 3
    record = rt.store.get(job_id)
    assert record["callback_status"] == "failed" and int(record["callback_attempts"]) == 3
    [letter] = rt.store.callbacks.read_dead_letters()
    assert letter["job_id"] == job_id and letter["reason"] == "attempts_exhausted"
    assert letter["attempts"] == 3 and letter["last_error"] == "ConnectTimeout"
    assert letter["url"] == "https://hooks.example.com/cb?***"  # a query may hold a token


def test_a_retry_waits_on_the_callback_schedule_by_the_redis_clock(make_rt, redis_client):
    """No Celery countdown (an ETA on the sender's clock): the job joins the ``callback``
    schedule at the retry time, and leaves it once delivered."""
    rt = make_rt()
    job_id = terminal_job(rt)
    session = FakeSession((503, {"Retry-After": "7"}), 200)
    first = delivery.deliver(rt, job_id, session=session, resolver=PUBLIC, rng=FixedRandom(1.0))
    assert (first.status, first.retry_in) == ("retry", 7.0)
    key = rt.store.keys.schedule("callback")
    due_in = float(redis_client.zscore(key, job_id)) - rt.store.clock()
    assert 6.0 < due_in <= 7.0005  # scores are the server time rounded to the millisecond
    assert rt.store.claim_due("callback", 60, 10) == []  # not due yet
    assert delivery.deliver(rt, job_id, session=session, resolver=PUBLIC).status == "delivered"
    assert redis_client.zscore(key, job_id) is None


def test_a_retry_after_http_date_is_honoured_like_seconds(make_rt):
    """RFC 9110 allows an HTTP-date; the callback policy once ignored it (issue 10)."""
    import email.utils
    import time

    rt = make_rt()
    job_id = terminal_job(rt)
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    session = FakeSession((503, {"Retry-After": when}))
    outcome = delivery.deliver(rt, job_id, session=session, resolver=PUBLIC,
                                         rng=FixedRandom(1.0))
    assert outcome.status == "retry"
    assert 18 <= outcome.retry_in <= 20  # not the 2 s backoff of a first failure


@pytest.mark.parametrize("status", [400, 404, 410, 302])
def test_a_permanent_answer_is_dead_lettered_at_once(make_rt, status):
    rt = make_rt()
    job_id = terminal_job(rt)
    session = FakeSession(status)
    outcome = delivery.deliver(rt, job_id, session=session, resolver=PUBLIC)
    assert (outcome.status, outcome.reason, outcome.retry_in) == ("dead", "http_status", None)
    [letter] = rt.store.callbacks.read_dead_letters()
    assert letter["last_status"] == status and letter["attempts"] == 1


def test_a_blocked_address_is_dead_lettered_and_nothing_is_sent(make_rt):
    rt = make_rt()
    job_id = terminal_job(rt, url="http://metadata.internal/latest")
    session = FakeSession()
    outcome = delivery.deliver(rt, job_id, session=session,
                                resolver=fake_resolver("169.254.169.254"))
    assert outcome.reason == "blocked_address"
    assert session.calls == []
    assert rt.store.callbacks.read_dead_letters()[0]["attempts"] == 0
    assert rt.store.get(job_id)["callback_status"] == "failed"


def test_the_allow_list_lets_an_internal_receiver_through(make_rt):
    rt = make_rt(HEADSWAP_CALLBACK_ALLOWED_NETWORKS="10.0.0.0/8")
    job_id = terminal_job(rt, url="http://hooks.internal:8080/cb")
    session = FakeSession(200)
    outcome = delivery.deliver(rt, job_id, session=session, resolver=fake_resolver("10.1.2.3"))
    assert outcome.status == "delivered"
    assert session.calls[0]["url"] == "http://10.1.2.3:8080/cb"
    assert session.calls[0]["headers"]["Host"] == "hooks.internal:8080"


def test_without_a_secret_nothing_is_sent_and_the_reason_says_so(make_rt, caplog):
    rt = make_rt(HEADSWAP_CALLBACK_SECRETS="")
    job_id = terminal_job(rt)
    session = FakeSession()
    with caplog.at_level(logging.ERROR, logger="worker.callbacks"):
        outcome = delivery.deliver(rt, job_id, session=session, resolver=PUBLIC)
    assert outcome.reason == "no_callback_secret"
    assert session.calls == []
    assert any("HEADSWAP_CALLBACK_SECRETS" in r.getMessage() for r in caplog.records)


def test_a_dns_failure_is_retried(make_rt):
    rt = make_rt()
    job_id = terminal_job(rt)

    def no_dns(*a, **k):
        raise socket.gaierror("no such name")

    outcome = delivery.deliver(rt, job_id, session=FakeSession(), resolver=no_dns)
    assert outcome.status == "retry"
    assert rt.store.get(job_id)["callback_error"] == "dns: gaierror"


def test_neither_secret_nor_signature_reaches_the_logs(make_rt, caplog):
    rt = make_rt()
    job_id = terminal_job(rt, url="https://u:hunter2pw@hooks.example.com/cb")
    session = FakeSession(500, 200)
    with caplog.at_level(logging.DEBUG):
        delivery.deliver(rt, job_id, session=session, resolver=PUBLIC)
        delivery.deliver(rt, job_id, session=session, resolver=PUBLIC)
    assert rt.store.get(job_id)["callback_status"] == "delivered"
    signatures = [c["headers"]["webhook-signature"].split(",", 1)[1] for c in session.calls]
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "callback delivered" in logged
    for needle in (SECRET, SECRET.removeprefix("whsec_"), "hunter2pw", *signatures):
        assert needle not in logged


def test_notify_enqueues_delivery_with_only_the_job_id(make_rt):
    rt = make_rt()
    with_url = terminal_job(rt, "j-url")
    without = rt.store.create("j-none", {}, state=states.FAILED).job_id
    assert notify.notify(rt, with_url) and notify.notify(rt, without)
    assert rt.sent == [("headswap.deliver_callback", {"job_id": "j-url"}, "headswap.notify")]
    assert rt.store.get("j-url")["callback_status"] == "pending"
    assert "callback_status" not in rt.store.get("j-none")


def test_the_callback_body_is_the_record_producers_get(make_rt):
    rt = make_rt()
    job_id = terminal_job(rt)
    rt.store.update(job_id, {"callback_status": "pending", "callback_attempts": 2,
                             "notified_at": 1.0, "not_found_count": 3})
    record = rt.store.get(job_id)
    body = json.loads(delivery.callback_body(record))
    view = notify.public_record(record)
    view.pop("notified_at")
    assert body == json.loads(json.dumps(view))
    assert "callback_status" not in body and "not_found_count" not in body
