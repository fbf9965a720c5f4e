"""Secrets never leave through logs, events, job records or task messages — checked on a
whole run (worker, beat, webhook receiver, sandbox) against a password-protected Redis."""

from __future__ import annotations

import json

from tests.support.procs import free_port
from tests.support.sandbox import FAST_KNOBS, SandboxProcess
from tests.support.stack import producer_for, running_stack, wait_all_terminal
from worker.devstack.redis_server import start_redis

API_KEY = "sk-APIKEY-7f3b9c2e11d04a8b"
CLIENT_SECRET = "CLSECRET-0123456789abcde"  # 24 bytes: the webhook AES-192 key
CALLBACK_SECRET = "whsec_Y2JzZWNyZXQtNWIyZDhlNzFhOWY0LTAxMjM0NTY3ODk="  # 32 bytes
REDIS_PASSWORD = "redispw-c41e09d7b6"
SECRETS = (API_KEY, CLIENT_SECRET, CALLBACK_SECRET, REDIS_PASSWORD)


def test_no_secret_appears_in_any_log_line_event_record_or_message(tmp_path):
    redis = start_redis(password=REDIS_PASSWORD)
    env = {"HEADSWAP_CALLBACK_SECRETS": CALLBACK_SECRET, "HEADSWAP_LOG_LEVEL": "DEBUG"}
    try:
        with SandboxProcess.start(api_key=API_KEY, client_secret=CLIENT_SECRET,
                                  knobs=FAST_KNOBS) as sb, \
                running_stack(redis.url, sb, extra_env=env, webhook_port=free_port()) as st:
            producer = producer_for(st)
            good = {"video_url": "https://cdn.example.com/s.mp4?duration=4", "resolution": "720p",
                    "mappings": [{"obj_id": 0, "img_url": "https://cdn.example.com/f.jpg"}],
                    "callback_task": {"name": "svc.done", "queue": "svc"}}
            ids = [producer.submit(**good) for _ in range(3)]
            ids.append(producer.submit(**{**good, "video_url": "https://cdn.example.com/x-sandbox-fail.mp4"}))
            bad_id = "bad-secret-probe"
            producer.celery.send_task("headswap.submit", queue="headswap.submit",
                                      kwargs={**good, "job_id": bad_id, "resolution": API_KEY})
            results = wait_all_terminal(producer, [*ids, bad_id], timeout=45)
            assert {r["state"] for r in results.values()} == {"succeeded", "failed", "rejected"}

            logs = st.logs() + sb.output()
            stored = []
            for key in st.redis.scan_iter(count=1000):
                kind = st.redis.type(key)
                if kind == "hash":
                    stored.append(json.dumps(st.redis.hgetall(key)))
                elif kind == "string":
                    stored.append(st.redis.get(key))
                elif kind == "list":
                    stored.extend(st.redis.lrange(key, 0, -1))
                elif kind == "stream":
                    stored.append(json.dumps(st.redis.xrange(key)))
            producer.close()
    finally:
        redis.stop()
    assert len(logs.splitlines()) > 100  # DEBUG logs of four processes: material to search
    assert "sandbox listening" in logs and "webhook receiver listening" in logs
    everything = logs + "\n".join(s for s in stored if s)
    for secret in SECRETS:
        assert secret not in everything, f"a secret leaked: {secret[:6]}..."
    # ...except where the producer itself put one into a job field: rejected, and stored
    # as the producer's own data. The API key was used as a "resolution" above on purpose:
    # it must appear nowhere in our logs either (field errors do not echo values).
