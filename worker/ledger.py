"""The cost ledger: what Akool charged, per producer and UTC day.

Every create's charge is recorded on its job (``charged``) and added to the ledger in the
same atomic step that records the task (``transition.lua``): the create's hold
(``deduction_lock_duration``), replaced by the final charge when a detail reports one
(``deduction_credit``). A create that failed is not charged; a task Akool created that no
job follows (``unbound_create``) is added all the same (``JobStore.charge_apart``). The
ledger is one Redis hash, ``d<unix day>:<producer>:credits`` / ``:jobs`` (and ``:held``
when a budget held the producer that day).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

DAY = 86400


@dataclass(frozen=True)
class Cost:
    day: str  # ISO date, UTC
    producer: str
    jobs: int
    credits: float
    held_at: float | None = None  # when its budget held the producer that day

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def day_number(at: float) -> int:
    return int(at // DAY)


def iso_day(number: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=number)).isoformat()


def costs(fields: Mapping[str, str], now: float, *, days: int = 7,
          producer: str | None = None) -> list[Cost]:  # fmt: skip
    """The ledger's rows for the last ``days`` UTC days (today included), newest first,
    then by producer."""
    first = day_number(now) - days + 1
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for name, value in fields.items():
        day, _, rest = name.partition(":")
        who, _, kind = rest.rpartition(":")
        if not day.startswith("d") or not day[1:].isdigit() or not who:
            continue
        number = int(day[1:])
        if number < first or (producer is not None and who != producer):
            continue
        row = rows.setdefault((number, who), {"jobs": 0, "credits": 0.0, "held_at": None})
        if kind == "jobs":
            row["jobs"] = int(value)
        elif kind == "credits":
            row["credits"] = round(float(value), 6)
        elif kind == "held":
            row["held_at"] = float(value)
    return [Cost(iso_day(n), who, **row)
            for (n, who), row in sorted(rows.items(), key=lambda kv: (-kv[0][0], kv[0][1]))]


def today(fields: Mapping[str, str], now: float) -> dict[str, Cost]:
    """Today's row of every producer that has one."""
    return {c.producer: c for c in costs(fields, now, days=1)}
