"""The Redis job store: job records, the state machine, schedules and the event stream.

Every key starts with ``{prefix}:`` — a hash tag, so every key of the store lives in one
Redis Cluster slot and the Lua scripts stay legal there. Keys:

==============================  =====================================================
``{p}:job:<job_id>``            hash: the job record (JSON-encoded complex fields)
``{p}:idem:<key>``              string: idempotency key -> job id (TTL)
``{p}:remotes``                 hash: Akool task id -> job id of jobs still following one
``{p}:events``                  stream: one entry per transition (consumer groups)
``{p}:poll``                    zset: job ids (or ``a:<hash>`` analyses) by next poll time
``{p}:wakeup``                  zset: queued job ids by when to (re)send their submit
``{p}:outbox``                  zset: terminal job ids whose notify has not completed
``{p}:inflight``                zset: job ids submitting, submitted or processing
``{p}:submitting``              zset: job ids in ``submitting`` by when they entered it
``{p}:ambiguous``               zset: job ids whose create may have run, by grace deadline
``{p}:analysis:<hash>``         hash: the analysis of one source video URL
==============================  =====================================================

A transition is one Lua call: check the current state, write the record, append the
event, and move the job between the schedules, all or nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis

from worker import states
from worker.errors import InFlightCapReached, JobNotFound, TransitionRefused
from worker.metrics import FAILURES, TRANSITIONS

log = logging.getLogger(__name__)

#: Approximate cap of the event stream (XADD MAXLEN ~).
EVENTS_MAXLEN = 200_000

_NUMERIC_FIELDS = (
    "attempts",
    "remote_status",
    "video_duration",
    "progress",
    "not_found_count",
    "callback_attempts",
    "callback_last_status",
)
_JSON_FIELDS = ("request", "error", "field_errors", "metadata", "callback_task", "analysis_media")

# KEYS[1] job, KEYS[2] events, KEYS[3] submitting zset, KEYS[4] in-flight zset,
# KEYS[5] wake-up zset, KEYS[6] remote-id -> job-id hash, KEYS[7..] extra keys used by ops
# ARGV[10] resend-after seconds (a job entering queued is woken then unless ops say sooner)
# ARGV[9] cap on in-flight jobs when entering submitting (0 = none)
# ARGV[1] target, ARGV[2] allowed-from JSON list, ARGV[3] now, ARGV[4] fields JSON object,
# ARGV[5] ops JSON list, ARGV[6] ttl for terminal (0 = none), ARGV[7] event extras JSON,
# ARGV[8] events maxlen
_TRANSITION = """
local cur = redis.call('HGET', KEYS[1], 'state')
if not cur then return {'missing', ''} end
local allowed = cjson.decode(ARGV[2])
local ok = false
for _, s in ipairs(allowed) do if s == cur then ok = true end end
if not ok then return {'refused', cur} end
local target = ARGV[1]
local now = ARGV[3]
local inflight = {submitting = true, submitted = true, processing = true}
if target == 'submitting' and tonumber(ARGV[9]) > 0
   and redis.call('ZCARD', KEYS[4]) >= tonumber(ARGV[9]) then
  return {'capped', cur}
end
redis.call('HSET', KEYS[1], 'state', target, 'updated_at', now, target .. '_at', now)
local fields = cjson.decode(ARGV[4])
for k, v in pairs(fields) do
  if v == '' then redis.call('HDEL', KEYS[1], k) else redis.call('HSET', KEYS[1], k, v) end
end
if tonumber(ARGV[6]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[6]) end
local job_id = redis.call('HGET', KEYS[1], 'job_id')
if target == 'submitting' then redis.call('ZADD', KEYS[3], now, job_id)
elseif cur == 'submitting' then redis.call('ZREM', KEYS[3], job_id) end
if inflight[target] then redis.call('ZADD', KEYS[4], now, job_id)
elseif inflight[cur] then redis.call('ZREM', KEYS[4], job_id) end
if target == 'queued' then
  redis.call('ZADD', KEYS[5], 'NX', tonumber(now) + tonumber(ARGV[10]), job_id)
elseif cur == 'queued' then redis.call('ZREM', KEYS[5], job_id) end
local remote_id = redis.call('HGET', KEYS[1], 'remote_id')
if remote_id then
  if tonumber(ARGV[6]) > 0 then redis.call('HDEL', KEYS[6], remote_id)
  elseif fields['remote_id'] then redis.call('HSET', KEYS[6], remote_id, job_id) end
end
for _, op in ipairs(cjson.decode(ARGV[5])) do
  local key = KEYS[op[2]]
  if op[1] == 'zadd' then redis.call('ZADD', key, op[4], op[3])
  elseif op[1] == 'zrem' then redis.call('ZREM', key, op[3])
  end
end
local ev = {'job_id', job_id, 'state', target, 'previous', cur,
            'at', now}
for k, v in pairs(cjson.decode(ARGV[7])) do table.insert(ev, k); table.insert(ev, v) end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', unpack(ev))
return {'ok', cur}
"""

# KEYS[1] job, KEYS[2] events, KEYS[3] idem key or '', KEYS[4] wakeup zset
# ARGV[1] job_id, ARGV[2] fields JSON, ARGV[3] now, ARGV[4] idem ttl, ARGV[5] wakeup score,
# ARGV[6] initial state, ARGV[7] ttl if terminal, ARGV[8] events maxlen
_CREATE = """
if KEYS[3] ~= '' then
  local existing = redis.call('GET', KEYS[3])
  if existing then return {'exists', existing} end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists', ARGV[1]} end
local fields = cjson.decode(ARGV[2])
redis.call('HSET', KEYS[1], 'job_id', ARGV[1], 'state', ARGV[6], 'created_at', ARGV[3],
           'updated_at', ARGV[3], ARGV[6] .. '_at', ARGV[3])
for k, v in pairs(fields) do if v ~= '' then redis.call('HSET', KEYS[1], k, v) end end
if KEYS[3] ~= '' then redis.call('SET', KEYS[3], ARGV[1], 'EX', ARGV[4]) end
if ARGV[6] == 'queued' then
  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
elseif tonumber(ARGV[7]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[7])
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', 'job_id', ARGV[1], 'state', ARGV[6],
           'previous', '', 'at', ARGV[3])
return {'created', ARGV[1]}
"""

# KEYS[1] job; ARGV[1] required state, ARGV[2] fields JSON
_UPDATE_IF = """
if redis.call('HGET', KEYS[1], 'state') ~= ARGV[1] then return 0 end
for k, v in pairs(cjson.decode(ARGV[2])) do
  if v == '' then redis.call('HDEL', KEYS[1], k) else redis.call('HSET', KEYS[1], k, v) end
end
return 1
"""

# KEYS[1] zset; ARGV[1] now, ARGV[2] lease seconds, ARGV[3] max items
_CLAIM = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
local until_ = tonumber(ARGV[1]) + tonumber(ARGV[2])
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], until_, member) end
return due
"""


@dataclass(frozen=True)
class Snapshot:
    """What the schedules say right now (metrics gauges, ``headswap stats``)."""

    queues: dict[str, int]
    queued: int
    submitting: int
    in_flight: int
    pending_polls: int
    ambiguous: int
    notify_pending: int
    oldest_in_flight_s: float
    credits_paused_until: float | None


@dataclass(frozen=True)
class Op:
    """A schedule change applied in the same atomic step as a transition."""

    kind: str  # "zadd" | "zrem"
    key: str
    member: str
    arg: float | int = 0


def decode_record(raw: Mapping[str, str]) -> dict[str, Any]:
    """A job hash as a plain dict: JSON fields decoded, timestamps as floats."""
    record: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _JSON_FIELDS:
            record[key] = json.loads(value)
        elif key.endswith("_at") or key in _NUMERIC_FIELDS:
            try:
                record[key] = float(value) if "." in value or key.endswith("_at") else int(value)
            except ValueError:
                record[key] = value
        else:
            record[key] = value
    return record


def encode_fields(fields: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in fields.items():
        if value is None:
            out[key] = ""  # deletes the field
        elif key in _JSON_FIELDS:
            out[key] = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        elif isinstance(value, bool):
            out[key] = "1" if value else "0"
        else:
            out[key] = str(value)
    return out


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:32]


class JobStore:
    """All Redis access of the worker goes through here."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "headswap",
        *,
        retention_seconds: int = 7 * 24 * 3600,
        idempotency_ttl: int = 24 * 3600,
        resend_after: float = 300.0,
    ) -> None:
        self.redis = client
        self.resend_after = resend_after
        self.p = "{" + prefix + "}"
        self.retention_seconds = retention_seconds
        self.idempotency_ttl = idempotency_ttl
        self._transition = client.register_script(_TRANSITION)
        self._create = client.register_script(_CREATE)
        self._claim = client.register_script(_CLAIM)
        self._update_if = client.register_script(_UPDATE_IF)

    # --- keys ---------------------------------------------------------------------------
    def job_key(self, job_id: str) -> str:
        return f"{self.p}:job:{job_id}"

    def idem_key(self, key: str) -> str:
        return f"{self.p}:idem:{key}"

    def analysis_key(self, video_url: str) -> str:
        return f"{self.p}:analysis:{url_hash(video_url)}"

    @property
    def events_key(self) -> str:
        return f"{self.p}:events"

    @property
    def poll_key(self) -> str:
        return f"{self.p}:poll"

    @property
    def wakeup_key(self) -> str:
        return f"{self.p}:wakeup"

    @property
    def submitting_key(self) -> str:
        return f"{self.p}:submitting"

    @property
    def credits_circuit_key(self) -> str:
        return f"{self.p}:circuit:credits"

    @property
    def remotes_key(self) -> str:
        return f"{self.p}:remotes"

    @property
    def inflight_key(self) -> str:
        return f"{self.p}:inflight"

    @property
    def ambiguous_key(self) -> str:
        return f"{self.p}:ambiguous"

    @property
    def outbox_key(self) -> str:
        return f"{self.p}:outbox"

    # --- jobs ---------------------------------------------------------------------------
    def create(
        self,
        job_id: str,
        fields: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        state: str = states.QUEUED,
        wakeup_at: float | None = None,
        now: float | None = None,
    ) -> tuple[bool, str]:
        """Create a job if neither it nor its idempotency key exists.

        Returns ``(created, job_id)``; for a known idempotency key, the existing job id.
        A queued job is put on the wake-up schedule so that a lost message is re-sent.
        """
        now = time.time() if now is None else now
        keys = [
            self.job_key(job_id),
            self.events_key,
            self.idem_key(idempotency_key) if idempotency_key else "",
            self.wakeup_key,
        ]
        args: list[str | int | float] = [
            job_id,
            json.dumps(encode_fields(fields)),
            f"{now:.3f}",
            self.idempotency_ttl,
            repr(wakeup_at if wakeup_at is not None else now),
            state,
            self.retention_seconds if state in states.TERMINAL else 0,
            EVENTS_MAXLEN,
        ]
        status, ident = self._create(keys=keys, args=args)
        if status == "created":
            log.info("job created", extra={"job_id": job_id, "state": state})
        return status == "created", str(ident)

    def get(self, job_id: str) -> dict[str, Any] | None:
        raw = cast(dict[str, str], self.redis.hgetall(self.job_key(job_id)))
        return decode_record(raw) if raw else None

    def require(self, job_id: str) -> dict[str, Any]:
        record = self.get(job_id)
        if record is None:
            raise JobNotFound(job_id)
        return record

    def job_for_idempotency_key(self, key: str) -> str | None:
        value = self.redis.get(self.idem_key(key))
        return str(value) if value is not None else None

    def job_for_remote(self, remote_id: str) -> str | None:
        value = self.redis.hget(self.remotes_key, remote_id)
        return str(value) if value is not None else None

    def update(self, job_id: str, fields: Mapping[str, Any]) -> None:
        """Write non-state fields (progress, notes). Never changes ``state``."""
        assert "state" not in fields
        encoded = encode_fields(fields)
        pipe = self.redis.pipeline()
        sets = {k: v for k, v in encoded.items() if v != ""}
        if sets:
            pipe.hset(self.job_key(job_id), mapping=sets)
        dels = [k for k, v in encoded.items() if v == ""]
        if dels:
            pipe.hdel(self.job_key(job_id), *dels)
        pipe.execute()

    def update_if_state(self, job_id: str, state: str, fields: Mapping[str, Any]) -> bool:
        """Write fields only while the job is still in ``state`` (atomic). True if written."""
        assert "state" not in fields
        args = [state, json.dumps(encode_fields(fields))]
        return bool(self._update_if(keys=[self.job_key(job_id)], args=args))

    def transition(
        self,
        job_id: str,
        target: str,
        *,
        fields: Mapping[str, Any] | None = None,
        ops: Iterable[Op] = (),
        event: Mapping[str, Any] | None = None,
        allowed: Iterable[str] | None = None,
        now: float | None = None,
        cap: int = 0,
    ) -> str:
        """Move a job to ``target`` atomically; return the state it left.

        Raises :class:`TransitionRefused` when the current state does not allow the move,
        :class:`InFlightCapReached` when entering ``submitting`` would exceed ``cap`` jobs
        in flight, and :class:`JobNotFound` when there is no such job.
        """
        now = time.time() if now is None else now
        allowed_from = sorted(allowed if allowed is not None else states.allowed_from(target))
        ops = list(ops)
        if target in states.TERMINAL:
            ops = [
                *ops,
                Op("zrem", self.poll_key, job_id),
                Op("zrem", self.wakeup_key, job_id),
                Op("zadd", self.outbox_key, job_id, now),
            ]
        keys = [
            self.job_key(job_id),
            self.events_key,
            self.submitting_key,
            self.inflight_key,
            self.wakeup_key,
            self.remotes_key,
        ]
        op_rows = []
        for op in ops:
            if op.key not in keys:
                keys.append(op.key)
            op_rows.append([op.kind, keys.index(op.key) + 1, op.member, op.arg])
        result = self._transition(
            keys=keys,
            args=[
                target,
                json.dumps(allowed_from),
                f"{now:.3f}",
                json.dumps(encode_fields(fields or {})),
                json.dumps(op_rows),
                self.retention_seconds if target in states.TERMINAL else 0,
                json.dumps({k: str(v) for k, v in (event or {}).items() if v is not None}),
                EVENTS_MAXLEN,
                cap,
                self.resend_after,
            ],
        )
        status, current = result[0], result[1]
        if status == "missing":
            raise JobNotFound(job_id)
        if status == "refused":
            raise TransitionRefused(job_id, current, target, allowed_from)
        if status == "capped":
            raise InFlightCapReached(job_id, cap)
        TRANSITIONS.labels(target).inc()
        if target == states.FAILED:
            FAILURES.labels(str((fields or {}).get("reason") or "unknown")).inc()
        log.info(
            "job %s -> %s",
            current,
            target,
            extra={"job_id": job_id, "state": target, "previous": str(current),
                   "remote_id": (fields or {}).get("remote_id"),
                   "reason": (fields or {}).get("reason")},
        )  # fmt: skip
        return str(current)

    # --- schedules ----------------------------------------------------------------------
    def claim_due(self, key: str, now: float, lease: float, limit: int) -> list[str]:
        """Atomically take up to ``limit`` due members and push their score out by ``lease``."""
        return [str(m) for m in self._claim(keys=[key], args=[f"{now:.3f}", repr(lease), limit])]

    def schedule(self, key: str, member: str, at: float) -> None:
        self.redis.zadd(key, {member: at})

    def schedule_if_present(self, key: str, member: str, at: float) -> None:
        """Reschedule only when still scheduled (a finished job must not come back)."""
        self.redis.zadd(key, {member: at}, xx=True)

    def unschedule(self, key: str, member: str) -> None:
        self.redis.zrem(key, member)

    def snapshot(self, queues: Iterable[str], now: float | None = None) -> Snapshot:
        """Queue lengths and schedule sizes in one round trip."""
        queues = list(queues)
        pipe = self.redis.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
        for key in (self.wakeup_key, self.submitting_key, self.inflight_key, self.poll_key,
                    self.ambiguous_key, self.outbox_key):  # fmt: skip
            pipe.zcard(key)
        pipe.zrange(self.inflight_key, 0, 0, withscores=True)
        pipe.get(self.credits_circuit_key)
        values = pipe.execute()
        n = len(queues)
        queued, submitting, inflight, pending, ambiguous, outbox = values[n : n + 6]
        oldest, circuit = values[n + 6], values[n + 7]
        now = time.time() if now is None else now
        paused = float(circuit) if circuit and float(circuit) > now else None
        return Snapshot(
            queues=dict(zip(queues, values[:n], strict=True)),
            queued=queued,
            submitting=submitting,
            in_flight=inflight,
            pending_polls=pending,
            ambiguous=ambiguous,
            notify_pending=outbox,
            oldest_in_flight_s=round(now - oldest[0][1], 1) if oldest else 0.0,
            credits_paused_until=paused,
        )

    def pending_count(self) -> int:
        return cast(int, self.redis.zcard(self.poll_key))

    # --- events -------------------------------------------------------------------------
    def read_events(self, start: str = "-", count: int = 1000) -> list[dict[str, str]]:
        entries = cast(
            list[tuple[str, dict[str, str]]],
            self.redis.xrange(self.events_key, min=start, count=count),
        )
        return [dict(fields, id=entry_id) for entry_id, fields in entries]
