"""The sandbox over real HTTP: endpoints, envelope, auth, analysis, create validation,
lifecycle and the control API. The sandbox runs as a subprocess (``python -m worker.sandbox``).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.support.sandbox import FAST_KNOBS, SandboxProcess, sandbox_fixture

OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
VIDEO = "https://media.example.com/videos/source.mp4"
FACE = "https://media.example.com/faces/ref.jpg"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    yield from sandbox_fixture(knobs=FAST_KNOBS, seed=11)


@pytest.fixture(autouse=True)
def _clean(sandbox: SandboxProcess) -> None:
    sandbox.reset(reset_config=True)


def create_body(video_url: str = VIDEO, obj_ids: tuple[int, ...] = (0,),
                **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "video_url": video_url,
        "mappings": [{"obj_id": o, "img_url": f"{FACE}?o={o}"} for o in obj_ids],
        "model_name": "akool-premium", "resolution": "720p",
    }
    body.update(extra)
    return body


def create(sb: SandboxProcess, body: object, **kw: Any) -> dict[str, Any]:
    response = sb.call("POST", "/v4/headswap/task/create", json=body, **kw)
    assert response.status_code == 200, response.text
    return dict(response.json())


def detail(sb: SandboxProcess, task_id: str, **kw: Any) -> dict[str, Any]:
    return dict(sb.call("GET", "/v4/headswap/task/detail", params={"_id": task_id},
                        **kw).json())


# -- control API and routing -------------------------------------------------------------


def test_health_and_unknown_routes(sandbox: SandboxProcess) -> None:
    assert requests.get(sandbox.url + "/_sandbox/health", timeout=5).json() == {"ok": True}
    assert requests.get(sandbox.url + "/nope", timeout=5).status_code == 404
    assert requests.post(sandbox.api_url("/v5/headswap/analyze"), timeout=5).status_code == 404
    wrong_method = requests.get(sandbox.api_url("/v4/headswap/task/create"), timeout=5)
    assert wrong_method.status_code == 405
    assert requests.post(sandbox.api_url("/v4/headswap/task/detail"), timeout=5).status_code \
        == 405
    too_big = requests.post(sandbox.api_url("/v4/headswap/task/create"), data=b"x" * (2 << 20),
                            headers=sandbox.headers(), timeout=10)
    assert too_big.status_code == 413


def test_config_partial_update_and_validation(sandbox: SandboxProcess) -> None:
    before = sandbox.config()
    assert before["processing_time"] == 0.6
    assert before["allowed_models"] == ["akool-premium"]
    after = sandbox.config(processing_time=[1, 2], credits=5)
    assert after["processing_time"] == [1.0, 2.0]
    assert after["credits"] == 5
    assert after["analysis_time"] == before["analysis_time"]
    bad = requests.post(sandbox.url + "/_sandbox/config", json={"fail_ratio": 2}, timeout=5)
    assert bad.status_code == 400 and "fail_ratio" in bad.json()["error"]
    unknown = requests.post(sandbox.url + "/_sandbox/config", json={"nope": 1}, timeout=5)
    assert unknown.status_code == 400 and "nope" in unknown.json()["error"]
    mixed = requests.post(sandbox.url + "/_sandbox/config",
                          json={"latency": 1, "hang_ratio": -1}, timeout=5)
    assert mixed.status_code == 400
    assert sandbox.config()["latency"] == 0.0  # all-or-nothing


def test_reset_clears_state_and_optionally_config(sandbox: SandboxProcess) -> None:
    sandbox.analyze(VIDEO)
    task_id = create(sandbox, create_body())["data"]["_id"]
    sandbox.config(fail_ratio=0.5)
    sandbox.reset()
    assert sandbox.stats()["creates"] == 0 and sandbox.stats()["tasks"] == 0
    assert detail(sandbox, task_id)["code"] == 1014
    assert sandbox.config()["fail_ratio"] == 0.5  # kept by default
    sandbox.reset(reset_config=True)
    assert sandbox.config()["fail_ratio"] == 0.0


# -- auth ----------------------------------------------------------------------------------


def get_token(sb: SandboxProcess, client_id: str | None = None,
              secret: str | None = None) -> dict[str, Any]:
    body = {"clientId": client_id or sb.client_id, "clientSecret": secret or sb.client_secret}
    return dict(requests.post(sb.api_url("/v3/getToken"), json=body, timeout=5).json())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_missing_and_invalid_key(sandbox: SandboxProcess) -> None:
    url = sandbox.api_url("/v4/headswap/task/detail")
    missing = requests.get(url, params={"_id": "0" * 24}, timeout=5)
    assert missing.status_code == 200
    assert missing.json()["code"] == 1102 and "data" not in missing.json()
    invalid = requests.get(url, params={"_id": "0" * 24}, headers={"x-api-key": "wrong"},
                           timeout=5).json()
    assert invalid["code"] == 1101 and "data" not in invalid
    ok = requests.get(url, params={"_id": "0" * 24}, headers=sandbox.headers(), timeout=5)
    assert ok.json()["code"] == 1014  # authorised, then not found
    assert sandbox.stats()["auth_failures"] == 2


def test_get_token_and_bearer_auth(sandbox: SandboxProcess) -> None:
    body = get_token(sandbox)
    assert body["code"] == 1000 and "data" not in body
    token = body["token"]
    assert len(token.split(".")) == 3
    url = sandbox.api_url("/v4/headswap/analyze")
    response = requests.post(url, headers=bearer(token),
                             json={"video_url": VIDEO, "type": "head"}, timeout=5).json()
    assert response["code"] == 1000
    # the API key works as clientSecret too (they are one value)
    assert get_token(sandbox, secret=sandbox.api_key)["code"] == 1000
    assert sandbox.stats()["token_calls"] == 2


def test_get_token_errors(sandbox: SandboxProcess) -> None:
    wrong = get_token(sandbox, secret="X" * 24)
    assert wrong["code"] == 1101 and "token" not in wrong and "data" not in wrong
    assert get_token(sandbox, client_id="OTHERCLIENTID001")["code"] == 1101
    missing = requests.post(sandbox.api_url("/v3/getToken"), json={"clientId": "x"},
                            timeout=5).json()
    assert missing["code"] == 1003


def test_authorization_header_takes_precedence(sandbox: SandboxProcess) -> None:
    token = get_token(sandbox)["token"]
    url = sandbox.api_url("/v4/headswap/task/detail")
    params = {"_id": "0" * 24}
    good_bearer_bad_key = requests.get(
        url, params=params, headers={**bearer(token), "x-api-key": "wrong"}, timeout=5).json()
    assert good_bearer_bad_key["code"] == 1014
    bad_bearer_good_key = requests.get(
        url, params=params, headers={**bearer("not.a.token"), **sandbox.headers()},
        timeout=5).json()
    assert bad_bearer_good_key["code"] == 1101
    not_bearer = requests.get(url, params=params, headers={"Authorization": f"Basic {token}"},
                              timeout=5).json()
    assert not_bearer["code"] == 1101


def test_token_expiry_and_revocation(sandbox: SandboxProcess) -> None:
    url = sandbox.api_url("/v4/headswap/task/detail")
    params = {"_id": "0" * 24}
    token = get_token(sandbox)["token"]
    assert requests.get(url, params=params, headers=bearer(token), timeout=5).json()["code"] \
        == 1014
    sandbox.config(token_ttl=0.3)
    time.sleep(0.4)
    assert requests.get(url, params=params, headers=bearer(token), timeout=5).json()["code"] \
        == 1101
    sandbox.config(token_ttl=3600)
    fresh = get_token(sandbox)["token"]
    assert requests.get(url, params=params, headers=bearer(fresh), timeout=5).json()["code"] \
        == 1014
    assert sandbox.revoke_tokens() == 2
    assert requests.get(url, params=params, headers=bearer(fresh), timeout=5).json()["code"] \
        == 1101


# -- analysis ------------------------------------------------------------------------------


def test_analyze_submit_fields(sandbox: SandboxProcess) -> None:
    body = sandbox.call("POST", "/v4/headswap/analyze",
                        json={"video_url": VIDEO, "type": "head"}).json()
    assert body["code"] == 1000 and body["msg"] == "Analyze success"
    data = body["data"]
    assert OBJECT_ID.match(data["_id"]) and OBJECT_ID.match(data["task_id"])
    assert data["_id"] != data["task_id"]
    assert data["video_url"] == VIDEO and data["type"] == "head"
    assert data["status"] == 1 and data["progress"] == 0
    assert isinstance(data["create_time"], int) and data["create_time"] > 1_600_000_000_000
    assert {"uid", "team_id"} <= data.keys()
    assert "analysis_result" not in data


@pytest.mark.parametrize("body", [
    {"video_url": VIDEO, "type": "face"},
    {"video_url": VIDEO},
    {"video_url": "ftp://media.example.com/a.mp4", "type": "head"},
    {"video_url": "", "type": "head"},
    {"type": "head"},
    ["not", "an", "object"],
])
def test_analyze_rejects_bad_input(sandbox: SandboxProcess, body: object) -> None:
    response = sandbox.call("POST", "/v4/headswap/analyze", json=body).json()
    assert response["code"] == 1003 and "data" not in response


def test_analysis_detail_completes_with_media(sandbox: SandboxProcess) -> None:
    url = f"{VIDEO}?persons=3&duration=8"
    data = sandbox.analyze(url)
    assert data["status"] == 3 and data["progress"] == 100
    assert data["error_code"] == 0 and data["error_reason"] == "success"
    result = data["analysis_result"]
    assert result["detected_objects"] == 3
    assert [m["obj_id"] for m in result["media"]] == [0, 1, 2]
    assert all(m["media_type"] == "images" for m in result["media"])
    assert result["video_info"]["frame_count"] == 240
    assert {"width", "height", "fps"} <= result["video_info"].keys()
    preview = requests.get(result["media"][2]["img_url"], timeout=5)
    assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")
    stats = sandbox.stats()
    assert stats["analyze_calls"] == 1 and stats["analysis_detail_calls"] >= 1


def test_analysis_pending_then_duration_failure(sandbox: SandboxProcess) -> None:
    sandbox.config(analysis_time=0.5)
    submitted = sandbox.call("POST", "/v4/headswap/analyze",
                             json={"video_url": f"{VIDEO}?duration=30", "type": "head"}).json()
    pending = sandbox.call("GET", "/v4/headswap/analyze/detail",
                           params={"_id": submitted["data"]["_id"]}).json()["data"]
    assert pending["status"] in (1, 2) and pending["analysis_result"] is None
    assert "error_code" not in pending
    failed = sandbox.wait_final("/v4/headswap/analyze/detail", submitted["data"]["_id"], 5)
    assert failed["status"] == 4 and failed["error_code"] == 1204
    assert failed["analysis_result"] is None and failed["error_reason"]


def test_analysis_detail_id_errors(sandbox: SandboxProcess) -> None:
    path = "/v4/headswap/analyze/detail"
    assert sandbox.call("GET", path).json()["code"] == 1003
    assert sandbox.call("GET", path, params={"_id": ""}).json()["code"] == 1003
    assert sandbox.call("GET", path, params={"_id": "0" * 24}).json()["code"] == 1014
    assert sandbox.call("GET", "/v4/headswap/task/detail").json()["code"] == 1003


# -- create validation ---------------------------------------------------------------------


def test_create_more_than_five_mappings(sandbox: SandboxProcess) -> None:
    url = f"{VIDEO}?persons=6"
    sandbox.analyze(url)
    body = create(sandbox, create_body(url, obj_ids=(0, 1, 2, 3, 4, 5)))
    assert body == {"code": 1003, "msg": "Up to 5 characters can be replaced at one time."}
    assert create(sandbox, create_body(url, obj_ids=(0, 1, 2, 3, 4)))["code"] == 1000
    stats = sandbox.stats()
    assert stats["creates"] == 1 and stats["create_rejections_by_code"] == {"1003": 1}


def test_create_obj_id_must_be_in_media(sandbox: SandboxProcess) -> None:
    url = f"{VIDEO}?persons=2"
    sandbox.analyze(url)
    body = create(sandbox, create_body(url, obj_ids=(2,)))
    assert body["code"] == 1003 and "obj_id 2" in body["msg"]
    assert create(sandbox, create_body(url, obj_ids=(1,)))["code"] == 1000


def test_create_needs_identical_analyzed_url(sandbox: SandboxProcess) -> None:
    sandbox.analyze(VIDEO)
    for other in (VIDEO + "?v=2", VIDEO.replace("https", "http"), VIDEO + "/"):
        body = create(sandbox, create_body(other))
        assert body["code"] == 1003 and "analyz" in body["msg"], other
    assert create(sandbox, create_body(VIDEO))["code"] == 1000


def test_create_with_incomplete_or_failed_analysis(sandbox: SandboxProcess) -> None:
    sandbox.config(analysis_time=5)
    sandbox.call("POST", "/v4/headswap/analyze", json={"video_url": VIDEO, "type": "head"})
    pending = create(sandbox, create_body())
    assert pending["code"] == 1003 and "not complete" in pending["msg"]
    sandbox.config(analysis_time=0)
    bad = f"{VIDEO}?duration=1"
    assert sandbox.analyze(bad)["status"] == 4
    failed = create(sandbox, create_body(bad))
    assert failed["code"] == 1003 and "failed" in failed["msg"]
    assert sandbox.stats()["creates"] == 0


def test_create_model_not_allowed(sandbox: SandboxProcess) -> None:
    sandbox.analyze(VIDEO)
    body = create(sandbox, create_body(model_name="akool-ultra"))
    assert body == {"code": 1003, "msg": "Your current account does not support this feature."}
    sandbox.config(allowed_models=["akool-premium", "akool-ultra"])
    assert create(sandbox, create_body(model_name="akool-ultra"))["code"] == 1000


@pytest.mark.parametrize("change", [
    {"resolution": "1080p"},
    {"resolution": None},
    {"model_name": ""},
    {"mappings": []},
    {"mappings": [{"obj_id": 0}]},
    {"mappings": [{"obj_id": "0", "img_url": FACE}]},
    {"mappings": [{"obj_id": True, "img_url": FACE}]},
    {"mappings": [{"obj_id": 0, "img_url": "file:///etc/passwd"}]},
    {"mappings": [{"obj_id": 0, "img_url": FACE}, {"obj_id": 0, "img_url": FACE}]},
    {"video_url": "not a url"},
    {"webhookUrl": "ftp://x"},
    {"keep_original_sound": "yes"},
])
def test_create_schema_errors(sandbox: SandboxProcess, change: dict[str, Any]) -> None:
    sandbox.analyze(VIDEO)
    body = create(sandbox, {**create_body(), **change})
    assert body["code"] == 1003 and "data" not in body
    assert sandbox.stats()["creates"] == 0


def test_create_invalid_json_and_auth_first(sandbox: SandboxProcess) -> None:
    raw = sandbox.call("POST", "/v4/headswap/task/create", data=b"{not json",
                       headers={"Content-Type": "application/json"}).json()
    assert raw["code"] == 1003
    no_auth = requests.post(sandbox.api_url("/v4/headswap/task/create"), data=b"{not json",
                            timeout=5).json()
    assert no_auth["code"] == 1102  # auth is checked before the body
    assert sandbox.stats()["create_rejections_by_code"] == {"1003": 1, "1102": 1}


def test_create_without_required_analysis(sandbox: SandboxProcess) -> None:
    assert create(sandbox, create_body())["code"] == 1003
    sandbox.config(require_analysis=False)
    body = create(sandbox, create_body(VIDEO + "?duration=12"))
    assert body["code"] == 1000 and body["data"]["video_duration"] == 12


# -- lifecycle -----------------------------------------------------------------------------


def test_create_response_and_lifecycle(sandbox: SandboxProcess) -> None:
    sandbox.config(processing_time=1.5)
    url = f"{VIDEO}?duration=10"
    sandbox.analyze(url)
    body = create(sandbox, create_body(url, webhookUrl=None, template_id="tpl-1",
                                       keep_original_sound=False, prompt="ignored on v4"))
    assert body["code"] == 1000 and body["msg"] == "OK"
    data = body["data"]
    assert OBJECT_ID.match(data["_id"]) and data["status"] == 1
    assert data["video_url"] is None and data["video_duration"] == 10
    assert data["resolution"] == "720p" and data["model_name"] == "akool-premium"
    assert data["file_name"].endswith(".mp4")
    assert {"create_time", "uid", "team_id", "task_id"} <= data.keys()
    assert data["deduction_lock_duration"] == 1  # the credits_per_task knob (unknown #18)
    seen: list[tuple[int, int]] = []
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:
        d = detail(sandbox, data["_id"])["data"]
        seen.append((d["status"], d["progress"]))
        assert d["source_video_url"] == url
        if d["status"] == 3:
            break
        assert d["video_url"] is None
        time.sleep(0.05)
    statuses = [s for s, _ in seen]
    assert statuses[0] == 1 and 2 in statuses and statuses[-1] == 3
    assert statuses == sorted(statuses)
    progress_in_2 = [p for s, p in seen if s == 2]
    assert progress_in_2 == sorted(progress_in_2) and all(0 < p < 100 for p in progress_in_2)
    assert d["progress"] == 100 and d["deduction_duration"] == 15
    assert d["deduction_credit"] == 1
    assert "error_code" not in d
    assert d["video_url"] == f"{sandbox.url}/_sandbox/output/{data['_id']}.mp4"
    output = requests.get(d["video_url"], timeout=5)
    assert output.status_code == 200 and output.content[4:8] == b"ftyp"
    assert output.headers["Content-Type"] == "video/mp4"
    assert sandbox.stats()["tasks_by_status"] == {"1": 0, "2": 0, "3": 1, "4": 0}


def test_output_not_served_before_completion(sandbox: SandboxProcess) -> None:
    sandbox.config(processing_time=5)
    sandbox.analyze(VIDEO)
    task_id = create(sandbox, create_body())["data"]["_id"]
    assert requests.get(f"{sandbox.url}/_sandbox/output/{task_id}.mp4", timeout=5) \
        .status_code == 404


def test_fail_ratio_ends_in_status_4(sandbox: SandboxProcess) -> None:
    sandbox.config(fail_ratio=1.0, processing_time=0.2)
    sandbox.analyze(VIDEO)
    task_id = create(sandbox, create_body())["data"]["_id"]
    data = sandbox.wait_task(task_id)
    assert data["status"] == 4 and data["video_url"] is None
    assert data["error_code"] == 1016 and data["error_reason"]


def test_sandbox_fail_url_ends_in_status_4(sandbox: SandboxProcess) -> None:
    sandbox.config(processing_time=0.2)
    url = "https://media.example.com/sandbox-fail/clip.mp4"
    sandbox.analyze(url)
    data = sandbox.wait_task(create(sandbox, create_body(url))["data"]["_id"])
    assert data["status"] == 4 and data["error_code"] == 1016


def test_task_detail_unknown_id(sandbox: SandboxProcess) -> None:
    assert detail(sandbox, "f" * 24) == {"code": 1014, "msg": "Resource not found"}
    assert detail(sandbox, "not-an-id")["code"] == 1014


# -- stats ---------------------------------------------------------------------------------


def test_fingerprint_counting_and_internal_view(sandbox: SandboxProcess) -> None:
    url = f"{VIDEO}?persons=2"
    sandbox.analyze(url)
    first = create(sandbox, create_body(url, obj_ids=(0, 1),
                                        webhookUrl="http://127.0.0.1:9/hook?job_id=job-A"))
    second = create(sandbox, create_body(url, obj_ids=(1, 0)))  # same mappings, other order
    other = create(sandbox, create_body(url, obj_ids=(1,)))
    assert all(b["code"] == 1000 for b in (first, second, other))
    pairs = sorted([[0, f"{FACE}?o=0"], [1, f"{FACE}?o=1"]])
    canonical = json.dumps({"video_url": url, "mappings": pairs}, sort_keys=True,
                           separators=(",", ":"))
    fp = hashlib.sha256(canonical.encode()).hexdigest()
    stats = sandbox.stats()
    assert stats["create_requests"] == 3 and stats["creates"] == 3
    assert stats["creates_by_fingerprint"][fp] == 2
    assert len(stats["creates_by_fingerprint"]) == 2
    assert stats["duplicate_creates"] == 1
    assert stats["creates_by_job"] == {"job-A": 1}
    view = sandbox.task(first["data"]["_id"])
    assert view["fingerprint"] == fp and view["job_id"] == "job-A"
    assert view["webhookUrl"] == "http://127.0.0.1:9/hook?job_id=job-A"
    missing = requests.get(f"{sandbox.url}/_sandbox/tasks/{'0' * 24}", timeout=5)
    assert missing.status_code == 404


def test_concurrent_creates_are_all_counted(sandbox: SandboxProcess) -> None:
    sandbox.analyze(VIDEO)

    def one(i: int) -> int:
        body = create_body(webhookUrl=f"http://127.0.0.1:9/h?job_id=j{i}")
        body["mappings"][0]["img_url"] = f"{FACE}?i={i}"
        return int(create(sandbox, body)["code"])

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(one, range(120)))
    assert codes == [1000] * 120
    stats = sandbox.stats()
    assert stats["creates"] == 120 and stats["duplicate_creates"] == 0
    assert len(stats["creates_by_job"]) == 120 and stats["tasks"] == 120


def test_outputs_are_real_videos_ffmpeg_can_decode(sandbox: SandboxProcess,
                                                   tmp_path: Any) -> None:
    """The output a copy stores is a real MP4 (issue 15): ffmpeg (imageio-ffmpeg's binary)
    decodes every frame of it, video and sound, without an error; two tasks' files differ."""
    import subprocess

    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    sandbox.config(processing_time=0.0)
    digests = set()
    for n in range(2):
        url = f"{VIDEO}?duration=4&n={n}"
        sandbox.analyze(url)
        task_id = create(sandbox, create_body(url))["data"]["_id"]
        output = requests.get(sandbox.wait_task(task_id)["video_url"], timeout=5)
        path = tmp_path / f"{n}.mp4"
        path.write_bytes(output.content)
        digests.add(hashlib.sha256(output.content).hexdigest())
        run = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path),
                              "-f", "null", "-"], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0 and run.stderr == "", run.stderr
        probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-i", str(path)],
                               capture_output=True, text=True, timeout=60)
        assert "Video: h264" in probe.stderr and "Audio: aac" in probe.stderr, probe.stderr
    assert len(digests) == 2
