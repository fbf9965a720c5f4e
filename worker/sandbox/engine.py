"""The sandbox's in-memory state and rules, under one lock held briefly.

HTTP-free: :mod:`worker.sandbox.app` turns requests into these calls and the returned dicts
into responses. Per-request work is O(1) (dict lookups, a heap for concurrency); only
``stats()`` walks all tasks.
"""

from __future__ import annotations

import dataclasses
import heapq
import random
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from worker.sandbox import codes
from worker.sandbox.auth import Credentials, TokenStore, authenticate
from worker.sandbox.codes import Rejection, bad_param
from worker.sandbox.faults import FaultDecision, FaultInjector, draw_span
from worker.sandbox.ids import new_object_id
from worker.sandbox.knobs import Knobs
from worker.sandbox.outputs import Delivery
from worker.sandbox.records import (
    COMPLETED,
    FAILED,
    Analysis,
    Task,
    Timeline,
    fingerprint,
    new_analysis_outcome,
)
from worker.sandbox.scheduler import Scheduler
from worker.sandbox.stats import Stats
from worker.sandbox.validation import CreateRequest, parse_analyze, parse_create
from worker.sandbox.videos import profile
from worker.sandbox.webhooks import Outbound, WebhookCourier, backoff_delay

Envelope = dict[str, Any]
ANALYSES_KEPT_PER_URL = 64
FAIL_REASON_RATIO = "Head swap generation failed"
FAIL_REASON_URL = "Head swap generation failed: the source video cannot be processed"


def ok(data: object, msg: str = "OK") -> Envelope:
    """A success envelope."""
    return {"code": codes.OK, "msg": msg, "data": data}


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


class Engine:
    """All sandbox state: knobs, tokens, analyses, tasks, counters, webhook scheduling."""

    def __init__(
        self,
        creds: Credentials,
        knobs: Knobs,
        *,
        seed: int | None = None,
        base_url: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = base_url
        self._creds = creds
        self._startup_knobs = knobs
        self._knobs = knobs
        self._seed = seed
        self._clock = clock
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._tokens = TokenStore()
        self._faults = FaultInjector()
        self._faults.arm_burst(knobs.burst_429)
        self._credits = knobs.credits
        self._stats = Stats()
        self._analyses: dict[str, Analysis] = {}
        self._analyses_by_url: dict[str, list[Analysis]] = {}
        self._tasks: dict[str, Task] = {}
        self._active_ends: list[float] = []
        self._generation = 0
        self._scheduler = Scheduler(clock)
        self._courier = WebhookCourier()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the webhook scheduler thread."""
        self._scheduler.start()

    def close(self) -> None:
        """Stop background delivery (pending webhooks are dropped)."""
        self._scheduler.stop()
        self._courier.close()

    # -- request admission -----------------------------------------------------------------

    def admit(self, route: str) -> FaultDecision:
        """Count an API request and decide its injected faults."""
        with self._lock:
            self._stats.count_call(route)
            decision = self._faults.decide(self._knobs, self._rng, self._clock(), route == "create")
            if decision.reject_status == 429:
                self._stats.http_429 += 1
            elif decision.reject_status is not None or decision.fail_after:
                self._stats.http_5xx += 1
            if decision.hang:
                self._stats.hangs += 1
            return decision

    def _authorize(self, headers: Mapping[str, str]) -> None:
        with self._lock:
            code = authenticate(
                headers, self._creds, self._tokens, self._clock(), self._knobs.token_ttl
            )
            if code is not None:
                self._stats.auth_failures += 1
                raise Rejection(code)

    # -- API: token ------------------------------------------------------------------------

    def issue_token(self, body: object) -> Envelope:
        """``POST /api/open/v3/getToken``: ``{"code":1000,"token":...}`` (no ``data``)."""
        if not isinstance(body, dict) or not all(
            isinstance(body.get(k), str) for k in ("clientId", "clientSecret")
        ):
            return bad_param("clientId and clientSecret are required").envelope()
        if not (
            self._creds.client_id_matches(body["clientId"])
            and self._creds.secret_matches(body["clientSecret"])
        ):
            return Rejection(codes.AUTH_INVALID, codes.MSG_BAD_CREDENTIALS).envelope()
        with self._lock:
            token = self._tokens.issue(self._clock(), time.time())
        return {"code": codes.OK, "msg": "OK", "token": token}

    # -- API: analysis ---------------------------------------------------------------------

    def analyze(self, headers: Mapping[str, str], body: object) -> Envelope:
        """``POST /api/open/v4/headswap/analyze``."""
        try:
            self._authorize(headers)
            video_url = parse_analyze(body)
        except Rejection as rej:
            return rej.envelope()
        with self._lock:
            analysis = self._new_analysis(video_url)
        return ok(analysis.submit_json(), codes.MSG_ANALYZE_OK)

    def _new_analysis(self, video_url: str) -> Analysis:
        video = profile(video_url)
        outcome, error_code, error_reason = new_analysis_outcome(video)
        analysis = Analysis(
            id=new_object_id(),
            task_id=new_object_id(),
            create_time=int(time.time() * 1000),
            video_url=video_url,
            timeline=Timeline(self._clock(), draw_span(self._rng, self._knobs.analysis_time)),
            video=video,
            outcome=outcome,
            error_code=error_code,
            error_reason=error_reason,
        )
        self._analyses[analysis.id] = analysis
        recent = self._analyses_by_url.setdefault(video_url, [])
        recent.append(analysis)
        if len(recent) > ANALYSES_KEPT_PER_URL:
            del recent[0]
        return analysis

    def analysis_detail(self, headers: Mapping[str, str], args: Mapping[str, str]) -> Envelope:
        """``GET /api/open/v4/headswap/analyze/detail?_id=``."""
        try:
            self._authorize(headers)
            record_id = _require_id(args)
            with self._lock:
                analysis = self._analyses.get(record_id)
                if analysis is None:
                    raise Rejection(codes.NOT_FOUND)
                return ok(analysis.detail_json(self._clock(), self.base_url))
        except Rejection as rej:
            return rej.envelope()

    # -- API: tasks ------------------------------------------------------------------------

    def create(self, headers: Mapping[str, str], body: object) -> Envelope:
        """``POST /api/open/v4/headswap/task/create``.

        Check order (unknown #9): auth, schema, model, analysis link, credits, concurrency.
        """
        try:
            self._authorize(headers)
            request = parse_create(body)
            with self._lock:
                task = self._create_locked(request)
            return ok(task.create_json())
        except Rejection as rej:
            with self._lock:
                self._stats.create_rejections_by_code[rej.code] += 1
            return rej.envelope()

    def _create_locked(self, request: CreateRequest) -> Task:
        knobs, now = self._knobs, self._clock()
        if request.model_name not in knobs.allowed_models:
            raise Rejection(codes.BAD_PARAM, codes.MSG_MODEL_NOT_ALLOWED)
        if knobs.require_analysis:
            duration = self._linked_analysis(request, now).video.duration
        else:
            duration = profile(request.video_url).duration
        if self._credits is not None and self._credits < knobs.credits_per_task:
            raise Rejection(codes.NO_CREDITS)
        if knobs.max_concurrent is not None and self._active(now) >= knobs.max_concurrent:
            raise Rejection(codes.TOO_FREQUENT)
        task = self._new_task(request, duration, now)
        if self._credits is not None:
            self._credits -= task.charge
        return task

    def _linked_analysis(self, request: CreateRequest, now: float) -> Analysis:
        recent = self._analyses_by_url.get(request.video_url)
        if not recent:
            raise bad_param(
                "video_url has not been analyzed: submit an analysis of the identical URL first"
            )
        statuses = [(a, a.status(now)) for a in reversed(recent)]
        analysis = next((a for a, s in statuses if s == COMPLETED), None)
        if analysis is None:
            if any(s in (1, 2) for _, s in statuses):
                raise bad_param("the analysis of video_url is not complete yet")
            raise bad_param("the analysis of video_url failed")
        for obj_id, _ in request.mappings:
            if obj_id >= analysis.video.persons:
                raise bad_param(f"obj_id {obj_id} is not in the analysis media")
        return analysis

    def _active(self, now: float) -> int:
        while self._active_ends and self._active_ends[0] <= now:
            heapq.heappop(self._active_ends)
        return len(self._active_ends)

    def _decide_outcome(self, request: CreateRequest) -> tuple[int, int | None, str | None]:
        if profile(request.video_url).task_fails:
            return FAILED, codes.SWAP_ERROR, FAIL_REASON_URL
        ratio = self._knobs.fail_ratio
        if ratio >= 1.0 or (ratio > 0 and self._rng.random() < ratio):
            return FAILED, codes.SWAP_ERROR, FAIL_REASON_RATIO
        return COMPLETED, None, None

    def _new_task(self, request: CreateRequest, duration: float, now: float) -> Task:
        outcome, error_code, error_reason = self._decide_outcome(request)
        task = Task(
            id=new_object_id(),
            task_id=new_object_id(),
            create_time=int(time.time() * 1000),
            request=request,
            fingerprint=fingerprint(request.video_url, request.mappings),
            video_duration=_number(duration),
            timeline=Timeline(now, processing_seconds(self._knobs, self._rng, duration)),
            outcome=outcome,
            error_code=error_code,
            error_reason=error_reason,
            charge=self._knobs.credits_per_task,
        )
        self._tasks[task.id] = task
        heapq.heappush(self._active_ends, task.timeline.end)
        self._stats.count_create(task.fingerprint, request.job_id, task.charge)
        if request.webhook_url:
            self._scheduler.call_at(
                task.timeline.end, partial(self._fire_webhook, task.id, self._generation)
            )
        return task

    def task_detail(self, headers: Mapping[str, str], args: Mapping[str, str]) -> Envelope:
        """``GET /api/open/v4/headswap/task/detail?_id=``."""
        try:
            self._authorize(headers)
            record_id = _require_id(args)
            with self._lock:
                task = self._tasks.get(record_id)
                if task is None:
                    raise Rejection(codes.NOT_FOUND)
                task.detail_calls.append(time.time())
                return ok(task.detail_json(self._clock(), self.base_url))
        except Rejection as rej:
            return rej.envelope()

    # -- webhooks --------------------------------------------------------------------------

    def _fire_webhook(self, task_id: str, generation: int) -> None:
        """Scheduler thread: the task is final (or a retry is due); hand off one attempt."""
        with self._lock:
            task = self._tasks.get(task_id)
            if generation != self._generation or task is None or not task.request.webhook_url:
                return
            if not self._knobs.webhooks:
                self._stats.webhooks_disabled += 1
                task.webhook.skipped = "webhooks disabled"
                return
            keys = self._creds.webhook_keys()
            if keys is None:
                self._stats.webhooks_skipped += 1
                task.webhook.skipped = "no usable client id / secret"
                return
            outbound = Outbound(
                task.request.webhook_url,
                task.webhook_payload(self.base_url),
                keys,
                self._knobs.webhook_timeout,
            )
        self._courier.send(outbound, partial(self._webhook_done, task_id, generation))

    def _webhook_done(self, task_id: str, generation: int, status: int | None) -> None:
        """Pool thread: record one attempt; schedule a retry unless 200 or out of attempts."""
        with self._lock:
            task = self._tasks.get(task_id)
            if generation != self._generation or task is None:
                return
            hook = task.webhook
            hook.attempts += 1
            hook.last_status = status
            self._stats.webhook_attempts += 1
            if status == 200:
                hook.delivered = True
                self._stats.webhook_deliveries += 1
                return
            knobs = self._knobs
            if hook.attempts >= knobs.webhook_max_attempts:
                hook.gave_up = True
                self._stats.webhook_failures += 1
                return
            delay = backoff_delay(hook.attempts, knobs.webhook_backoff, knobs.webhook_backoff_cap)
            self._scheduler.call_at(
                self._clock() + delay, partial(self._fire_webhook, task_id, generation)
            )

    # -- control API -----------------------------------------------------------------------

    def config(self) -> dict[str, object]:
        """Current knobs; ``burst_429`` and ``credits`` show the live remaining values."""
        with self._lock:
            return self._config_locked()

    def _config_locked(self) -> dict[str, object]:
        out = self._knobs.to_json()
        out["burst_429"] = self._faults.burst_remaining
        out["credits"] = self._credits
        return out

    def update_config(self, changes: Mapping[str, object]) -> dict[str, object]:
        """Apply a partial update (all-or-nothing); raises ``KnobError`` on a bad value."""
        with self._lock:
            self._knobs = self._knobs.updated(changes)
            if "burst_429" in changes:
                self._faults.arm_burst(self._knobs.burst_429)
            if "credits" in changes:
                self._credits = self._knobs.credits
            return self._config_locked()

    def reset(self, reset_config: bool = False) -> dict[str, object]:
        """Forget tasks, analyses, tokens, counters and pending webhooks; reseed the RNG.

        Knobs stay as they are unless ``reset_config``, which restores the startup knobs.
        Either way the credit balance is refilled from the ``credits`` knob and armed 429
        bursts are dropped (re-armed from the startup knobs when ``reset_config``).
        """
        with self._lock:
            self._generation += 1
            if reset_config:
                self._knobs = self._startup_knobs
            self._faults.reset()
            if reset_config:
                self._faults.arm_burst(self._knobs.burst_429)
            self._credits = self._knobs.credits
            self._rng = random.Random(self._seed)
            self._tokens.revoke_all()
            self._stats = Stats()
            self._analyses.clear()
            self._analyses_by_url.clear()
            self._tasks.clear()
            self._active_ends.clear()
            self._scheduler.clear()
            return self._config_locked()

    def revoke_tokens(self) -> int:
        """Invalidate every issued token; return how many."""
        with self._lock:
            return self._tokens.revoke_all()

    def stats(self) -> dict[str, object]:
        """Counters plus gauges (O(number of tasks))."""
        with self._lock:
            now = self._clock()
            out = self._stats.snapshot()
            by_status = {str(s): 0 for s in (1, 2, 3, 4)}
            for task in self._tasks.values():
                by_status[str(task.status(now))] += 1
            out["tasks_by_status"] = by_status
            out["tasks"] = len(self._tasks)
            out["analyses"] = len(self._analyses)
            out["active_tasks"] = self._active(now)
            out["credits_left"] = self._credits
            out["tokens"] = len(self._tokens)
            out["webhooks_pending"] = self._scheduler.pending()
            return out

    def task_view(self, task_id: str) -> dict[str, object] | None:
        """Internal view of one task (webhookUrl, fingerprint, delivery state), or None."""
        with self._lock:
            task = self._tasks.get(task_id)
            return None if task is None else task.internal_json(self._clock(), self.base_url)

    def output_ready(self, task_id: str) -> bool:
        """True when the task exists and completed (its output can be served)."""
        with self._lock:
            task = self._tasks.get(task_id)
            return task is not None and task.status(self._clock()) == COMPLETED

    def output_delivery(self, task_id: str) -> Delivery:
        """How to answer a download of ``task_id``'s output now (the download knobs; a
        cut or 5xx spends one of its count)."""
        with self._lock:
            now, k = self._clock(), self._knobs
            task = self._tasks.get(task_id)
            if task is None or task.status(now) != COMPLETED:
                self._stats.output_downloads["not_found"] += 1
                return Delivery(404)
            if k.output_expiry and now > task.timeline.end + k.output_expiry:
                self._stats.output_downloads["expired"] += 1
                return Delivery(k.output_expired_status)
            if k.output_5xx:
                self._knobs = dataclasses.replace(k, output_5xx=k.output_5xx - 1)
                self._stats.output_downloads["http_5xx"] += 1
                return Delivery(503)
            cut = None
            if k.output_cuts:
                self._knobs = dataclasses.replace(k, output_cuts=k.output_cuts - 1)
                cut = k.output_cut_after
            self._stats.output_downloads["cut" if cut is not None else "ok"] += 1
            return Delivery(200, latency=draw_span(self._rng, k.output_latency),
                            rate=k.output_rate, cut_after=cut, size=k.output_size)

    def preview_exists(self, analysis_id: str, obj_id: int) -> bool:
        """True when the analysis exists and has a person ``obj_id``."""
        with self._lock:
            analysis = self._analyses.get(analysis_id)
            return analysis is not None and 0 <= obj_id < analysis.video.persons


def processing_seconds(knobs: Knobs, rng: random.Random, video_duration: float) -> float:
    """How long a new task takes: a draw from ``processing_time`` plus
    ``processing_per_video_second`` times the source video's duration."""
    return draw_span(rng, knobs.processing_time) + knobs.processing_per_video_second * float(
        video_duration
    )


def _require_id(args: Mapping[str, str]) -> str:
    record_id = (args.get("_id") or "").strip()
    if not record_id:
        raise bad_param("_id is required")
    return record_id
