"""Person analysis of source videos: the gate in front of every create.

Akool only creates a head swap for a ``video_url`` it has analysed (the same string),
and only for ``obj_id`` values that analysis found. Per source URL the store keeps one
analysis (status, Akool analysis id, obj ids). The first job that needs one claims it
(one atomic step) and starts it; jobs that arrive meanwhile wait in ``queued`` in the
URL's waiter set; when the analysis ends (followed by the poller), every waiter is re-sent.

Only Akool's own verdict on the video is remembered (a failed analysis, a refusal of the
URL): our own trouble — a bad token, a network error — fails or retries the job at hand
and leaves the URL free for the next one.

A mapping whose ``obj_id`` is not in a completed analysis is rejected before any create.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from headswap_client.keys import ANALYSIS_MEMBER_PREFIX

from worker.akool_types import STATUS_COMPLETED, STATUS_FAILED, Analysis
from worker.classify import is_verdict
from worker.errors import AkoolError, AkoolFatal
from worker.jobs import message_from_record
from worker.runtime import Runtime
from worker.store.analyses import COMPLETED, FAILED, PENDING
from worker.timing import full_jitter, transient_pause

log = logging.getLogger(__name__)

#: A failed analysis is remembered this long, then a new job may try the URL again.
FAILED_TTL_SECONDS = 600
#: Poll-schedule members for analyses start with this (job ids cannot contain ':').
MEMBER_PREFIX = ANALYSIS_MEMBER_PREFIX

__all__ = ["COMPLETED", "FAILED", "MEMBER_PREFIX", "PENDING", "Gate", "follow", "gate", "start"]


@dataclass(frozen=True)
class Gate:
    ready: bool = False
    waiting: bool = False
    failed: bool = False
    rejected: bool = False
    error: dict[str, Any] | None = None
    field_errors: dict[str, Any] = field(default_factory=dict)


def gate(rt: Runtime, record: dict[str, Any]) -> Gate:
    """Decide whether a queued job can be created now. Raises AkoolError when the
    analysis could not be started (AkoolFatal: our own trouble, never cached)."""
    video_url = record["request"]["video_url"]
    info = start(rt, video_url)
    status = info.get("status")
    if status == COMPLETED:
        return _check_mappings(record, info)
    if status == FAILED:
        return Gate(failed=True, error=json.loads(info.get("error") or "{}"))
    if info.get("analysis_id"):  # followed by the poller; put it back if a crash lost it
        rt.store.schedule("poll", rt.store.keys.analysis_member(video_url), 1.0, "nx")
    # Pending: wait, then look again — it may have ended between the two reads.
    rt.store.analyses.add_waiter(video_url, record["job_id"])
    again = rt.store.analyses.get(video_url)
    if again.get("status") in (COMPLETED, FAILED):
        rt.store.analyses.remove_waiter(video_url, record["job_id"])
        return gate(rt, record)
    return Gate(waiting=True)


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
    """The URL's analysis, started once (the claim is the lock) unless another worker has
    it. Returns the stored analysis."""
    s = rt.settings
    existing = rt.store.analyses.claim(
        video_url, ttl=s.analysis_ttl_seconds, stale_after=s.longest_call_seconds
    )
    if existing is not None:
        return existing
    try:
        result = rt.akool.analyze(video_url)
    except AkoolFatal as exc:
        if not is_verdict(exc):
            rt.store.analyses.abandon(video_url)
            raise
        _finish_failed(rt, video_url, exc.as_dict())
        return rt.store.analyses.get(video_url)
    except AkoolError:
        rt.store.analyses.abandon(video_url)  # let the next attempt start it again
        raise
    rt.store.analyses.started(video_url, result.analysis_id)
    if not _apply(rt, video_url, result, release=False):
        rt.store.schedule("poll", rt.store.keys.analysis_member(video_url), 1.0)
    return rt.store.analyses.get(video_url)


def follow(rt: Runtime, member: str) -> None:
    """Poll one analysis (a poll-schedule member ``a:<hash>``)."""
    info = rt.store.analyses.get_by_member(member)
    if not info or info.get("status") != PENDING or not info.get("analysis_id"):
        rt.store.unschedule("poll", member)
        return
    video_url = info["video_url"]
    try:
        result = rt.akool.analysis_detail(info["analysis_id"])
    except AkoolFatal as exc:
        if is_verdict(exc):
            _finish_failed(rt, video_url, exc.as_dict())
        else:  # the id is unknown to us now, or our credentials: start afresh next time
            rt.store.analyses.abandon(video_url)
        rt.store.unschedule("poll", member)
        _release(rt, video_url)
        return
    except AkoolError as exc:
        pause = transient_pause(rt.settings.poll_min_interval_seconds, exc.retry_after)
        rt.store.schedule("poll", member, pause, "xx")
        return
    if _apply(rt, video_url, result, release=True):
        rt.store.unschedule("poll", member)
    else:
        delay = full_jitter(2 * rt.settings.poll_min_interval_seconds)
        rt.store.schedule("poll", member, delay, "xx")


def _apply(rt: Runtime, video_url: str, result: Analysis, *, release: bool) -> bool:
    """Store a final analysis result; return True when the analysis has ended."""
    if result.status == STATUS_COMPLETED:
        ttl = rt.settings.analysis_ttl_seconds
        rt.store.analyses.complete(video_url, list(result.obj_ids), ttl)
    elif result.status == STATUS_FAILED:
        error = {"code": result.error_code, "msg": result.error_reason, "operation": "analyze"}
        _finish_failed(rt, video_url, error)
    else:
        return False
    if release:
        _release(rt, video_url)
    return True


def _finish_failed(rt: Runtime, video_url: str, error: dict[str, Any]) -> None:
    rt.store.analyses.fail(video_url, error, FAILED_TTL_SECONDS)
    log.warning("analysis failed", extra={"code": error.get("code")})


def _release(rt: Runtime, video_url: str) -> None:
    """Re-send the submit of every job that waited for this analysis."""
    for job_id in rt.store.analyses.take_waiters(video_url):
        record = rt.store.get(job_id)
        if record is not None:
            rt.send("headswap.submit", message_from_record(record), queue="headswap.submit")
