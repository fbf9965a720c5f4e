"""The producer's part of the Redis store: create a job record, read it, cancel it, read
the event stream and the callback dead letters.

The worker's store (``worker.store.JobStore``) extends :class:`ClientStore`: the create
step, the transition step's plan and the reads are this code on both sides, so a record a
producer creates is exactly one the workers would have created. Every timestamp and
schedule score comes from the Redis server's clock (``TIME`` inside the scripts).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from headswap_client import states
from headswap_client.admission import AdmissionView
from headswap_client.codec import decode_record, split_fields
from headswap_client.events import EventStream
from headswap_client.keys import SCHEDULES, Keys
from headswap_client.scripts import SharedScripts

log = logging.getLogger(__name__)

#: Approximate cap of the event stream (XADD MAXLEN ~).
EVENTS_MAXLEN = 200_000
#: KEYS index (1-based) of the first schedule in the transition and create scripts.
TRANSITION_SCHEDULES_AT = 5
CREATE_SCHEDULES_AT = 4


@dataclass(frozen=True)
class Created:
    """What :meth:`ClientStore.create` did: ``status`` is created, exists, conflict or taken."""

    status: str
    job_id: str
    at: float


@dataclass(frozen=True)
class TransitionRequest:
    """One call of ``transition.lua``: its KEYS and its plan (ARGV[1], as JSON)."""

    keys: list[str]
    body: dict[str, Any]
    allowed: list[str]

    @property
    def args(self) -> list[str]:
        return [json.dumps(self.body)]


def join_rows(plan: states.SchedulePlan, first_key: int) -> list[list[Any]]:
    return [[SCHEDULES.index(name) + first_key, delay, nx] for name, delay, nx in plan.join]


def transition_request(
    keys: Keys,
    job_id: str,
    target: str,
    *,
    retention_seconds: int,
    fields: Mapping[str, Any] | None = None,
    delays: Mapping[str, float] | None = None,
    event: Mapping[str, Any] | None = None,
    allowed: Iterable[str] | None = None,
    stamp_once: Sequence[str] = (),
    cap: int = 0,
    nonce: tuple[str, int] | None = None,
    charge: float | None = None,
    charge_final: bool = False,
) -> TransitionRequest:
    """The plan of one move to ``target``; the schedule moves are the data of
    :mod:`headswap_client.states`. The script answers ``[status, current, at]``:
    ``ok``, ``missing``, ``refused``, ``capped`` or ``replay``."""
    allowed_from = sorted(allowed if allowed is not None else states.allowed_from(target))
    plan = states.schedule_plan(target, delays)
    sets, deletes = split_fields(dict(fields or {}))
    event_pairs, _ = split_fields({k: v for k, v in (event or {}).items() if v is not None})
    nonce_key = keys.nonce(nonce[0]) if nonce else keys.job(job_id)
    body = {
        "target": target,
        "allowed": allowed_from,
        "fields": sets,
        "delete": deletes,
        "stamp_once": list(stamp_once),
        "leave": [SCHEDULES.index(n) + TRANSITION_SCHEDULES_AT for n in plan.leave],
        "join": join_rows(plan, TRANSITION_SCHEDULES_AT),
        "cap": cap,
        "inflight": SCHEDULES.index("inflight") + TRANSITION_SCHEDULES_AT,
        "index_remote": target in states.REMOTE_INDEXED,
        "ttl": retention_seconds if target in states.TERMINAL else 0,
        "event": event_pairs,
        "maxlen": EVENTS_MAXLEN,
        "nonce_ttl": nonce[1] if nonce else 0,
    }
    if charge is not None:  # JSON null would reach the script as cjson.null, not nil
        body["charge"] = float(charge)
        body["charge_final"] = charge_final
    script_keys = [keys.job(job_id), keys.events, keys.remotes, nonce_key, *keys.schedules,
                   *keys.transition_extras]  # fmt: skip
    return TransitionRequest(script_keys, body, allowed_from)


class ClientStore:
    """Job records as a producer sees them: create, read, cancel; events; dead letters."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "headswap",
        *,
        retention_seconds: int = 7 * 24 * 3600,
        idempotency_ttl: int = 24 * 3600,
    ) -> None:
        self._redis = client
        self.keys = Keys(prefix)
        self.retention_seconds = retention_seconds
        self.idempotency_ttl = idempotency_ttl
        self._shared = SharedScripts(client)
        self.events = EventStream(client, self.keys)
        self.admission = AdmissionView(client, self.keys)

    # --- records ------------------------------------------------------------------------
    def create(
        self,
        job_id: str,
        fields: Mapping[str, Any],
        *,
        fingerprint: str = "-",
        idempotency_key: str | None = None,
        state: str = states.QUEUED,
        delays: Mapping[str, float] | None = None,
    ) -> Created:
        """Create a job unless its id or idempotency key is taken (one atomic step).

        A queued job joins the wake-up schedule, so a lost message is re-sent; a job
        created terminal (rejected) joins the outbox and expires after the retention.
        """
        sets, _ = split_fields(fields)
        plan = states.schedule_plan(state, delays)
        keys = [
            self.keys.job(job_id),
            self.keys.events,
            self.keys.idempotency(idempotency_key) if idempotency_key else self.keys.job(job_id),
            *self.keys.schedules,
            self.keys.epoch,
        ]
        body = {
            "job_id": job_id,
            "state": state,
            "fields": sets,
            "fingerprint": fingerprint,
            "idempotency": bool(idempotency_key),
            "idem_ttl": self.idempotency_ttl,
            "join": join_rows(plan, CREATE_SCHEDULES_AT),
            "ttl": self.retention_seconds if state in states.TERMINAL else 0,
            "maxlen": EVENTS_MAXLEN,
        }
        status, ident, at = self._shared("create", keys, [json.dumps(body)])
        if status == "created":
            log.info("job created", extra={"job_id": job_id, "state": state})
        return Created(str(status), str(ident), float(at))

    def get(self, job_id: str) -> dict[str, Any] | None:
        raw = cast(dict[str, str], self._redis.hgetall(self.keys.job(job_id)))
        return decode_record(raw) if raw else None

    def get_many(self, job_ids: Iterable[str]) -> list[dict[str, Any] | None]:
        """:meth:`get` of each id, in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hgetall(self.keys.job(job_id))
        return [decode_record(raw) if raw else None for raw in pipe.execute()]

    def cancel_queued(self, job_id: str) -> bool:
        """``queued -> cancelled`` in one atomic step; False when the job is unknown or
        past ``queued`` (a worker has it). The workers' ``Jobs.cancel`` is this move."""
        request = transition_request(
            self.keys, job_id, states.CANCELLED, retention_seconds=self.retention_seconds,
            event={"reason": "cancelled"},
        )  # fmt: skip
        status, *_ = self._shared("transition", request.keys, request.args)
        return bool(status == "ok")

    # --- HTTP callbacks given up on -----------------------------------------------------
    def read_dead_letters(
        self, *, limit: int = 100, since: float | None = None
    ) -> list[dict[str, Any]]:
        """Dead-lettered HTTP callbacks, newest first (the workers write them)."""
        return read_dead_letters(self._redis, self.keys, limit=limit, since=since)

    # --- the server ---------------------------------------------------------------------
    def clock(self) -> float:
        """The Redis server's time: the one clock every process compares against."""
        seconds, micros = cast(tuple[int, int], self._redis.time())
        return seconds + micros / 1_000_000

    def ping(self) -> bool:
        return bool(self._redis.ping())

    def close(self) -> None:
        self._redis.close()


def read_dead_letters(
    client: redis.Redis, keys: Keys, *, limit: int = 100, since: float | None = None
) -> list[dict[str, Any]]:
    """Dead-lettered HTTP callbacks (``{p}:callback-dead:<job_id>``), newest first."""
    index = keys.dead_letters
    low: float | str = "-inf" if since is None else since
    ids = cast(list[str], client.zrevrangebyscore(index, "+inf", low, start=0, num=limit))
    if not ids:
        return []
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hgetall(keys.dead_letter(job_id))
    out: list[dict[str, Any]] = []
    for raw in cast(list[dict[str, str]], pipe.execute()):
        if not raw:
            continue  # expired
        letter: dict[str, Any] = dict(raw)
        letter["attempts"] = int(raw.get("attempts") or 0)
        letter["last_status"] = int(raw["last_status"]) if raw.get("last_status") else None
        letter["last_error"] = raw.get("last_error") or None
        letter["at"] = float(raw.get("at") or 0)
        out.append(letter)
    return out
