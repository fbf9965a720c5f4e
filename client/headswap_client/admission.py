"""Where queued jobs stand in fair admission: the producers' lines, their counts, the
admission rate, one job's position. Read only; the workers' ``worker.store.admission``
writes (``admit.lua``), and ``transition.lua`` keeps the counts in step with every move."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import redis

from headswap_client.keys import Keys

#: Admissions are counted in buckets of this many seconds; the rate is over the last minute.
RATE_BUCKET_SECONDS = 10
RATE_WINDOW_BUCKETS = 6


@dataclass(frozen=True)
class Line:
    """One producer's line and counts."""

    waiting: int = 0
    in_flight: int = 0
    admitted: int = 0  # granted, create not settled
    weight: float | None = None
    pass_: float = 0.0


@dataclass(frozen=True)
class Lines:
    lines: Mapping[str, Line] = field(default_factory=dict)
    virtual_time: float = 0.0
    rate: float = 0.0  # admissions per second over the last minute
    now: float = 0.0  # server time of the read

    @property
    def waiting(self) -> int:
        return sum(line.waiting for line in self.lines.values())


class AdmissionView:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._keys = keys

    def line_size(self) -> int:
        """Jobs waiting in all lines."""
        return int(cast(int, self._redis.zcard(self._keys.admit_line)))

    def lines(self) -> Lines:
        """Every producer's line and counts, and the admission rate (a few round trips)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(self._keys.admit_counts)
        pipe.hgetall(self._keys.admit_state)
        pipe.hgetall(self._keys.admit_rate)
        pipe.time()
        counts, state, buckets, (secs, micros) = pipe.execute()
        producers = set(self.producers_waiting())
        for name in (*counts, *state):
            kind, _, producer = str(name).partition(":")
            if kind in ("busy", "pend", "pass", "w") and producer:
                producers.add(producer)
        pipe = self._redis.pipeline(transaction=False)
        ordered = sorted(producers)
        for producer in ordered:
            pipe.zlexcount(  # type: ignore[no-untyped-call]
                self._keys.admit_line, f"[{producer}|", f"[{producer}|\xff")
        waiting = pipe.execute()
        lines = {}
        for producer, n in zip(ordered, waiting, strict=True):
            weight = state.get(f"w:{producer}")
            lines[producer] = Line(
                waiting=int(n), in_flight=int(counts.get(f"busy:{producer}", 0)),
                admitted=int(counts.get(f"pend:{producer}", 0)),
                weight=float(weight) if weight else None,
                pass_=float(state.get(f"pass:{producer}", 0)),
            )  # fmt: skip
        return Lines(lines, float(state.get("v", 0)), _rate(buckets, int(secs)),
                     secs + micros / 1_000_000)

    def producers_waiting(self) -> list[str]:
        """The producers with jobs in a line, in name order (one read per producer)."""
        found: list[str] = []
        low = "-"
        while True:
            head = cast(list[str], self._redis.zrangebylex(self._keys.admit_line, low, "+",
                                                           start=0, num=1))  # fmt: skip
            if not head:
                return found
            producer = str(head[0]).split("|", 1)[0]
            found.append(producer)
            low = f"({producer}|\xff"

    def position(self, record: Mapping[str, Any]) -> dict[str, Any] | None:
        """Where a queued job stands: ``position`` in its producer's line (1 = next),
        ``ahead`` (jobs of every producer admitted before it, by the scheduler's order as
        it stands), and ``eta_seconds`` at the admission rate of the last minute (None
        when nothing was admitted lately). None when the job is not waiting in a line."""
        member = record.get("line")
        if record.get("state") != "queued" or not member:
            return None
        member = str(member)
        producer = member.split("|", 1)[0]
        line_key = self._keys.admit_line
        pipe = self._redis.pipeline(transaction=False)
        pipe.zscore(line_key, member)
        pipe.zlexcount(  # type: ignore[no-untyped-call]
                line_key, f"[{producer}|", f"({member}")
        pipe.hgetall(self._keys.ledger)
        in_line, before, ledger = pipe.execute()
        if in_line is None:
            return None  # admitted (its create is on the way) or not in a line yet
        lines = self.lines()
        mine = lines.lines.get(producer, Line())
        ahead = int(before) + _others_ahead(producer, int(before), lines)
        rate = lines.rate
        day = f"d{int(lines.now // 86400)}:{producer}"
        queue: dict[str, Any] = {
            "position": int(before) + 1, "ahead": ahead, "producer_waiting": mine.waiting,
            "admission_rate": round(rate, 3),
            "eta_seconds": round((ahead + 1) / rate, 1) if rate > 0 else None,
        }  # fmt: skip
        if f"{day}:held" in ledger:  # its producer's budget holds it until the next UTC day
            queue["held"] = "budget_exhausted"
            queue["eta_seconds"] = None
        return queue


def _others_ahead(producer: str, before: int, lines: Lines) -> int:
    """Jobs of other producers the scheduler admits before this job: while both wait,
    producer q gets ``w_q / w_p`` admissions for each of ``p``'s, counted from where their
    passes stand (start-time fair queuing)."""
    mine = lines.lines.get(producer, Line())
    w_p = mine.weight or 1.0
    v = lines.virtual_time
    my_tag = max(mine.pass_, v) + before / w_p  # the start tag of this job
    ahead = 0
    for name, line in lines.lines.items():
        if name == producer or not line.waiting:
            continue
        w_q = line.weight or 1.0
        tag_q = max(line.pass_, v)
        if my_tag > tag_q:
            ahead += min(line.waiting, int((my_tag - tag_q) * w_q) + (1 if name < producer
                                                                    else 0))  # fmt: skip
    return ahead


def _rate(buckets: Mapping[str, str], now: int) -> float:
    current = now // RATE_BUCKET_SECONDS
    full = range(current - RATE_WINDOW_BUCKETS, current)  # whole buckets only
    admitted = sum(int(buckets.get(str(b), 0)) for b in full)
    return admitted / (RATE_WINDOW_BUCKETS * RATE_BUCKET_SECONDS)
