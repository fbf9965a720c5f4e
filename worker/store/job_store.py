"""The Redis job store: job records, the state machine's atomic step, schedules, events.

:class:`JobStore` extends the producer's store (:class:`headswap_client.store.ClientStore`,
which owns creating, reading and the transition step's plan). All Redis access of the
worker goes through a :class:`JobStore` and its parts
(``store.analyses``, ``store.callbacks``, ``store.guards``, ``store.events``): flow modules
never hold the Redis client. Key names live in :mod:`headswap_client.keys`, scripts in
``lua/``. Every timestamp and schedule score is taken from the Redis server's clock
(``TIME`` inside the scripts), so processes whose own clocks disagree still agree on what
is due.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis
from headswap_client.codec import split_fields
from headswap_client.keys import SCHEDULES
from headswap_client.store import ClientStore, transition_request
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from worker.errors import (
    InFlightCapReached,
    JobNotFound,
    NonceReplayed,
    ReplicationLag,
    TransitionRefused,
)
from worker.store.admission import AdmissionStore
from worker.store.analyses import AnalysisStore
from worker.store.callbacks import CallbackStore
from worker.store.guards import Guards
from worker.store.presence import Presence
from worker.store.scripts import Scripts

log = logging.getLogger(__name__)
T = TypeVar("T")

#: KEYS index (1-based) of the first schedule in the update script.
_UPDATE_SCHEDULES_AT = 2


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
    #: entries in ``{p}:dead-messages`` (queue entries no worker could take)
    dead_messages: int = 0
    #: queued jobs waiting in a producer's line for fair admission (part of ``queued``)
    waiting_for_admission: int = 0


@dataclass(frozen=True)
class Moved:
    """A transition that happened: the state left, the server time of the move and the
    job's producer."""

    previous: str
    at: float
    producer: str = "default"


class JobStore(ClientStore):
    """Job records and their lifecycle's atomic steps: the producer's store
    (:class:`headswap_client.store.ClientStore`: create, get, events, dead letters) and
    every other step the workers take."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "headswap",
        *,
        retention_seconds: int = 7 * 24 * 3600,
        idempotency_ttl: int = 24 * 3600,
        min_replicas: int = 0,
        replica_wait_ms: int = 1000,
    ) -> None:
        super().__init__(client, prefix, retention_seconds=retention_seconds,
                         idempotency_ttl=idempotency_ttl)  # fmt: skip
        #: Writes that must survive a failover wait for this many replicas (``WAIT``).
        self.min_replicas = min_replicas
        self.replica_wait_ms = replica_wait_ms
        self._scripts = Scripts(client)
        self.analyses = AnalysisStore(client, self.keys, self._scripts)
        self.callbacks = CallbackStore(client, self.keys, self._scripts, retention_seconds)
        self.guards = Guards(client, self.keys, self._scripts)
        self.workers = Presence(client, self.keys)
        self.admission: AdmissionStore = AdmissionStore(client, self.keys, self._scripts)

    # --- the server ---------------------------------------------------------------------
    def persist(self, action: Callable[[], T], *, for_seconds: float,
                on_retry: Callable[[Exception], None]) -> T:
        """Run one store write that must not be lost, retrying while Redis is unreachable
        for up to about ``for_seconds`` (declared: redis-py's Retry with jittered backoff).
        For the write whose data exists nowhere else: a created task's id."""
        pause_cap = 5.0
        retry = Retry(
            ExponentialWithJitterBackoff(base=0.2, cap=pause_cap),
            retries=max(1, int(for_seconds / pause_cap) + 4),
            supported_errors=(RedisConnectionError, RedisTimeoutError),
        )
        return retry.call_with_retry(action, on_retry)

    def drop_bindings(self, bindings: Iterable[tuple[str, str]]) -> int:
        """Remove broker binding entries (set key, member) that an older release left."""
        pipe = self._redis.pipeline(transaction=False)
        for key, member in bindings:
            pipe.srem(key, member)
        return sum(int(n) for n in pipe.execute())

    # --- records ------------------------------------------------------------------------
    def traceparent(self, job_id: str) -> str | None:
        """The job's trace context (W3C ``traceparent``, :mod:`worker.tracing`), if any."""
        value = self._redis.hget(self.keys.job(job_id), "traceparent")
        return str(value) if value else None

    def require(self, job_id: str) -> dict[str, Any]:
        record = self.get(job_id)
        if record is None:
            raise JobNotFound(job_id)
        return record

    def job_for_idempotency_key(self, key: str) -> str | None:
        value = self._redis.get(self.keys.idempotency(key))
        return str(value).split(" ", 1)[0] if value is not None else None

    def job_for_remote(self, remote_id: str) -> str | None:
        value = self._redis.hget(self.keys.remotes, remote_id)
        return str(value) if value is not None else None

    def update(
        self,
        job_id: str,
        fields: Mapping[str, Any] | None = None,
        *,
        state: str = "",
        absent: str = "",
        stamp: Sequence[str] = (),
        incr: str = "",
        join: Mapping[str, float] | None = None,
    ) -> tuple[bool, int]:
        """Write non-state fields of an existing job, atomically; never recreates one.

        Only while the job is in ``state`` (when given) and ``absent`` is not a field yet
        (when given). ``stamp`` fields get the server time, ``incr`` is counted up by one,
        ``join`` puts the job on schedules (name -> delay, score always set). Returns
        ``(written, incremented value)``.
        """
        fields = dict(fields or {})
        assert "state" not in fields
        sets, deletes = split_fields(fields)
        rows = [
            [SCHEDULES.index(name) + _UPDATE_SCHEDULES_AT, float(delay), False]
            for name, delay in (join or {}).items()
        ]
        body = {"state": state, "absent": absent, "fields": sets, "delete": deletes,
                "stamp": list(stamp), "incr": incr, "join": rows}  # fmt: skip
        written, counted = self._scripts(
            "update", [self.keys.job(job_id), *self.keys.schedules], [json.dumps(body)]
        )
        return bool(written), int(counted)

    def transition(
        self,
        job_id: str,
        target: str,
        *,
        fields: Mapping[str, Any] | None = None,
        delays: Mapping[str, float] | None = None,
        event: Mapping[str, Any] | None = None,
        allowed: Iterable[str] | None = None,
        stamp_once: Sequence[str] = (),
        cap: int = 0,
        nonce: tuple[str, int] | None = None,
        replicated: bool = False,
        charge: float | None = None,
        charge_final: bool = False,
    ) -> Moved:
        """Move a job to ``target`` in one atomic step; the schedule moves are the data of
        :mod:`headswap_client.states` (``delays`` gives the joined schedules' scores).

        Raises :class:`TransitionRefused` when the current state does not allow the move,
        :class:`InFlightCapReached` when entering ``submitting`` would exceed ``cap`` jobs
        in flight, :class:`NonceReplayed` when ``nonce`` (key digest, TTL) was already
        stored, and :class:`JobNotFound` when there is no such job.

        ``replicated``: with ``min_replicas`` set, the move is followed on the same
        connection by ``WAIT min_replicas replica_wait_ms``; fewer acknowledgements raise
        :class:`ReplicationLag` (the move stands on the master, a failover may forget it).
        """
        request = transition_request(
            self.keys, job_id, target, retention_seconds=self.retention_seconds,
            fields=fields, delays=delays, event=event, allowed=allowed,
            stamp_once=stamp_once, cap=cap, nonce=nonce, charge=charge,
            charge_final=charge_final,
        )  # fmt: skip
        keys, args, allowed_from = request.keys, request.args, request.allowed
        if replicated and self.min_replicas:
            pipe = self._redis.pipeline(transaction=False)
            self._shared("transition", keys, args, client=pipe)
            pipe.execute_command("WAIT", self.min_replicas, self.replica_wait_ms)  # type: ignore[no-untyped-call]
            (status, current, at, producer), acked = pipe.execute()
            if status == "ok" and int(acked) < self.min_replicas:
                raise ReplicationLag(job_id, int(acked), self.min_replicas)
        else:
            status, current, at, producer = self._shared("transition", keys, args)
        if status == "missing":
            raise JobNotFound(job_id)
        if status == "refused":
            raise TransitionRefused(job_id, str(current), target, allowed_from)
        if status == "capped":
            raise InFlightCapReached(job_id, cap)
        if status == "replay":
            raise NonceReplayed(job_id)
        return Moved(str(current), float(at), str(producer))

    def ledger(self) -> tuple[dict[str, str], float]:
        """The cost ledger's fields and the server time, in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(self.keys.ledger)
        pipe.time()
        fields, (secs, micros) = pipe.execute()
        return dict(fields), secs + micros / 1_000_000

    def charge_apart(self, producer: str, credits: float) -> None:
        """Add a charge to the ledger that no job's record takes: a task Akool created
        (and charged) that its job does not follow (``unbound_create``)."""
        field = f"d{int(self.clock() // 86400)}:{producer}"
        pipe = self._redis.pipeline(transaction=True)
        pipe.hincrbyfloat(self.keys.ledger, f"{field}:credits", credits)
        pipe.hincrby(self.keys.ledger, f"{field}:jobs", 1)
        pipe.execute()

    # --- schedules ----------------------------------------------------------------------
    def claim_due(self, schedule: str, lease: float, limit: int, lag: float = 0.0) -> list[str]:
        """Atomically take up to ``limit`` members due by the server clock (scored at or
        before now - ``lag``) and push their score out by ``lease`` (0: just read)."""
        key = self.keys.schedule(schedule)
        return [str(m) for m in self._scripts("claim", [key], [repr(lease), limit, repr(lag)])]

    def claim_due_scored(
        self, schedule: str, lease: float, limit: int, lag: float = 0.0
    ) -> list[tuple[str, float]]:
        """:meth:`claim_due`, each member with the time it was due (its score before the
        claim, server clock)."""
        key = self.keys.schedule(schedule)
        flat = self._scripts("claim", [key], [repr(lease), limit, repr(lag), "withscores"])
        return [(str(flat[i]), float(flat[i + 1])) for i in range(0, len(flat), 2)]

    def schedule(self, schedule: str, member: str, delay: float, mode: str = "set") -> bool:
        """Score ``member`` at server time + ``delay``; ``mode`` ``xx`` only while still
        scheduled (a finished job must not come back), ``nx`` only if absent."""
        key = self.keys.schedule(schedule)
        return bool(self._scripts("schedule", [key], [member, repr(float(delay)), mode]))

    def unschedule(self, schedule: str, member: str) -> None:
        self._redis.zrem(self.keys.schedule(schedule), member)

    def pending_count(self) -> int:
        return cast(int, self._redis.zcard(self.keys.schedule("poll")))

    def due_count(self, schedule: str) -> int:
        """Members of ``schedule`` due now (server clock) and not claimed: a claim moves
        its members' scores a lease ahead."""
        now = self.clock()
        return cast(int, self._redis.zcount(self.keys.schedule(schedule), "-inf", now))

    def epoch(self) -> float:
        """The server time this Redis started to hold our data: written once by the first
        process that finds it missing. A value that changes under a running process means
        Redis lost everything in between (restarted empty, flushed, evicted)."""
        return self.epoch_status()[0]

    def epoch_status(self) -> tuple[float, bool]:
        """``(epoch, lost)``: :meth:`epoch`, and whether it was missing while jobs were
        still on the schedules — a Redis that evicted or lost part of our data (a whole
        wipe shows as a changed epoch to a process that knew the old one)."""
        # One snapshot (MULTI/EXEC): read apart, a first job created between the epoch read
        # (missing) and the schedules (not empty) looked like lost data.
        pipe = self._redis.pipeline(transaction=True)
        pipe.time()
        pipe.get(self.keys.epoch)
        for name in ("inflight", "poll", "wakeup", "outbox"):
            pipe.zcard(self.keys.schedule(name))
        pipe.zcard(self.keys.admit_line)  # queued jobs waiting for admission
        (secs, micros), current, *sizes = pipe.execute()
        if current is not None:
            return float(current), False
        jobs_known = any(int(n) for n in sizes)
        stamp = f"{secs + micros / 1_000_000:.3f}"
        self._redis.set(self.keys.epoch, stamp, nx=True)
        return float(cast(str, self._redis.get(self.keys.epoch)) or stamp), jobs_known

    def evicted_keys(self) -> int | None:
        """Keys Redis evicted since it started (INFO stats), None when INFO is refused."""
        try:
            stats = cast(dict[str, Any], self._redis.info("stats"))
        except redis.ResponseError:
            return None
        return int(stats.get("evicted_keys") or 0)

    def server_risks(self) -> dict[str, str]:
        """What in the Redis server's configuration can lose jobs: ``eviction`` and
        ``persistence``, each in words, when seen (empty: none). Read with INFO, which
        managed services allow (CONFIG may not be)."""
        try:
            memory = cast(dict[str, Any], self._redis.info("memory"))
            persistence = cast(dict[str, Any], self._redis.info("persistence"))
        except redis.ResponseError:
            return {}  # INFO refused (a proxy): nothing to judge by
        risks = {}
        policy = str(memory.get("maxmemory_policy", "noeviction"))
        if policy != "noeviction" and int(memory.get("maxmemory") or 0) > 0:
            risks["eviction"] = (
                f"maxmemory-policy is {policy}: when memory fills, Redis evicts keys — job "
                "records, locks and idempotency keys — and jobs vanish or are created twice; "
                "set maxmemory-policy noeviction"
            )
        if not int(persistence.get("aof_enabled") or 0):
            risks["persistence"] = (
                "appendonly is off: a Redis restart loses every job written since the last "
                "snapshot (all of them without one); set appendonly yes"
            )
        return risks

    def snapshot(self, queues: Iterable[str]) -> Snapshot:
        """Queue lengths and schedule sizes in one round trip (server clock)."""
        queues = list(queues)
        pipe = self._redis.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
        for name in ("wakeup", "submitting", "inflight", "poll", "ambiguous", "outbox"):
            pipe.zcard(self.keys.schedule(name))
        pipe.zrange(self.keys.schedule("inflight"), 0, 0, withscores=True)
        pipe.get(self.keys.circuit("credits"))
        pipe.time()
        pipe.zcard(self.keys.dead_messages)
        pipe.zcard(self.keys.admit_line)
        values = pipe.execute()
        n = len(queues)
        queued, submitting, inflight, pending, ambiguous, outbox = values[n : n + 6]
        oldest, circuit, (secs, micros) = values[n + 6], values[n + 7], values[n + 8]
        now = secs + micros / 1_000_000
        paused = float(circuit) if circuit and float(circuit) > now else None
        return Snapshot(
            queues=dict(zip(queues, values[:n], strict=True)),
            queued=queued + values[n + 10],  # on the wake-up schedule, or in a line
            waiting_for_admission=values[n + 10],
            submitting=submitting,
            in_flight=inflight,
            pending_polls=pending,
            ambiguous=ambiguous,
            notify_pending=outbox,
            oldest_in_flight_s=round(now - oldest[0][1], 1) if oldest else 0.0,
            credits_paused_until=paused,
            dead_messages=values[n + 9],
        )
