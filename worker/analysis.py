"""Person analysis of source videos: the gate in front of every create.

Akool only creates a head swap for a ``video_url`` it has analysed (the same string),
and only for ``obj_id`` values that analysis found. Per source URL the store keeps one
analysis (``{p}:analysis:<hash>``: status, Akool analysis id, obj ids). The first job
that needs one starts it; jobs that arrive meanwhile wait in ``queued`` in the URL's
waiter set; when the analysis ends (followed by the poller), every waiter is re-sent.

A mapping whose ``obj_id`` is not in a completed analysis is rejected before any create.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, cast

from worker.akool_types import STATUS_COMPLETED, STATUS_FAILED, Analysis
from worker.errors import AkoolError, AkoolFatal
from worker.runtime import Runtime
from worker.timing import full_jitter, transient_pause

log = logging.getLogger(__name__)

PENDING = "pending"
COMPLETED = "completed"
FAILED = "failed"
#: A failed analysis is remembered this long, then a new job may try the URL again.
FAILED_TTL_SECONDS = 600
#: Poll-schedule members for analyses start with this (job ids cannot contain ':').
MEMBER_PREFIX = "a:"


@dataclass(frozen=True)
class Gate:
    ready: bool = False
    waiting: bool = False
    failed: bool = False
    rejected: bool = False
    error: dict[str, Any] | None = None
    field_errors: dict[str, Any] = field(default_factory=dict)


def _member(key: str) -> str:
    """The poll-schedule member of the analysis stored at ``key``."""
    return MEMBER_PREFIX + key.rsplit(":", 1)[1]


def waiters_key(rt: Runtime, video_url: str) -> str:
    return rt.store.analysis_key(video_url) + ":waiters"


def load(rt: Runtime, video_url: str) -> dict[str, str]:
    return cast(dict[str, str], rt.redis.hgetall(rt.store.analysis_key(video_url)))


def gate(rt: Runtime, record: dict[str, Any]) -> Gate:
    """Decide whether a queued job can be created now."""
    video_url = record["request"]["video_url"]
    info = load(rt, video_url)
    if not info:
        info = start(rt, video_url)
    status = info.get("status")
    if status == COMPLETED:
        return _check_mappings(record, info)
    if status == FAILED:
        return Gate(failed=True, error=json.loads(info.get("error") or "{}"))
    _repair_pending(rt, video_url, info)
    # Pending: wait, then look again — it may have ended between the two reads.
    rt.redis.sadd(waiters_key(rt, video_url), record["job_id"])
    again = load(rt, video_url)
    if again.get("status") in (COMPLETED, FAILED):
        rt.redis.srem(waiters_key(rt, video_url), record["job_id"])
        return gate(rt, record)
    return Gate(waiting=True)


def _repair_pending(rt: Runtime, video_url: str, info: dict[str, str]) -> None:
    """A worker may die between claiming an analysis and following it. Restart a claim
    that never got an Akool id; put a known analysis back on the poll schedule."""
    key = rt.store.analysis_key(video_url)
    if not info.get("analysis_id"):
        started = float(info.get("started_at") or 0)
        if started and time.time() - started > rt.settings.longest_call_seconds:
            rt.redis.delete(key)  # the next job through the gate starts it again
        return
    rt.redis.zadd(rt.store.poll_key, {_member(key): time.time() + 1.0}, nx=True)


def _check_mappings(record: dict[str, Any], info: dict[str, str]) -> Gate:
    known = set(json.loads(info.get("obj_ids") or "[]"))
    errors: dict[str, Any] = {}
    for index, mapping in enumerate(record["request"]["mappings"]):
        if mapping["obj_id"] not in known:
            errors[str(index)] = {
                "obj_id": [f"Not found in the video's analysis (found: {sorted(known)})."]
            }
    if errors:
        return Gate(rejected=True, field_errors={"mappings": errors})
    return Gate(ready=True)


def start(rt: Runtime, video_url: str) -> dict[str, str]:
    """Start an analysis unless another worker just did (HSETNX is the lock)."""
    key = rt.store.analysis_key(video_url)
    if not rt.redis.hsetnx(key, "status", PENDING):
        return load(rt, video_url)
    rt.redis.hset(key, mapping={"video_url": video_url, "started_at": repr(time.time())})
    rt.redis.expire(key, rt.settings.analysis_ttl_seconds)
    try:
        result = rt.akool.analyze(video_url)
    except AkoolFatal as exc:
        _finish_failed(rt, video_url, exc.as_dict())
        return load(rt, video_url)
    except AkoolError:
        rt.redis.delete(key)  # let the next attempt start it again
        raise
    rt.redis.hset(key, "analysis_id", result.analysis_id)
    _apply(rt, video_url, result, release=False)
    info = load(rt, video_url)
    if info.get("status") == PENDING:
        member = _member(key)
        rt.redis.hset(key, "member", member)
        rt.store.schedule(rt.store.poll_key, member, time.time() + 1.0)
    return info


def follow(rt: Runtime, member: str) -> None:
    """Poll one analysis (a poll-schedule member ``a:<hash>``)."""
    key = f"{rt.store.p}:analysis:{member[len(MEMBER_PREFIX) :]}"
    info = cast(dict[str, str], rt.redis.hgetall(key))
    if not info or info.get("status") != PENDING or not info.get("analysis_id"):
        rt.store.unschedule(rt.store.poll_key, member)
        return
    try:
        result = rt.akool.analysis_detail(info["analysis_id"])
    except AkoolFatal as exc:
        _finish_failed(rt, info["video_url"], exc.as_dict())
        rt.store.unschedule(rt.store.poll_key, member)
        _release(rt, info["video_url"])
        return
    except AkoolError as exc:
        pause = transient_pause(rt.settings.poll_min_interval_seconds, exc.retry_after)
        rt.store.schedule_if_present(rt.store.poll_key, member, time.time() + pause)
        return
    if _apply(rt, info["video_url"], result, release=True):
        rt.store.unschedule(rt.store.poll_key, member)
    else:
        delay = full_jitter(2 * rt.settings.poll_min_interval_seconds)
        rt.store.schedule_if_present(rt.store.poll_key, member, time.time() + delay)


def _apply(rt: Runtime, video_url: str, result: Analysis, *, release: bool) -> bool:
    """Store a final analysis result; return True when the analysis has ended."""
    key = rt.store.analysis_key(video_url)
    if result.status == STATUS_COMPLETED:
        rt.redis.hset(
            key,
            mapping={"status": COMPLETED, "obj_ids": json.dumps(sorted(result.obj_ids))},
        )
        rt.redis.expire(key, rt.settings.analysis_ttl_seconds)
    elif result.status == STATUS_FAILED:
        error = {"code": result.error_code, "msg": result.error_reason, "operation": "analyze"}
        _finish_failed(rt, video_url, error)
    else:
        return False
    if release:
        _release(rt, video_url)
    return True


def _finish_failed(rt: Runtime, video_url: str, error: dict[str, Any]) -> None:
    key = rt.store.analysis_key(video_url)
    rt.redis.hset(key, mapping={"status": FAILED, "error": json.dumps(error)})
    rt.redis.expire(key, FAILED_TTL_SECONDS)
    log.warning("analysis failed", extra={"code": error.get("code")})


def _release(rt: Runtime, video_url: str) -> None:
    """Re-send the submit of every job that waited for this analysis."""
    from worker.submission import message_from_record

    key = waiters_key(rt, video_url)
    for job_id in cast(set[str], rt.redis.smembers(key)):
        record = rt.store.get(job_id)
        rt.redis.srem(key, job_id)
        if record is not None:
            rt.send("headswap.submit", message_from_record(record), queue="headswap.submit")
