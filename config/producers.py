"""Per-producer policy: weight, own in-flight cap, share of the create rate, daily budget.

``HEADSWAP_PRODUCER_POLICY`` (or a mounted file, ``HEADSWAP_PRODUCER_POLICY_FILE``) holds
one entry per producer, ``;``-separated, each ``name:key=value,key=value``; the name
``*`` is the policy of every producer not listed::

    checkout:weight=3,max_in_flight=40;batch:weight=1,daily_budget=5000,over_budget=hold;*:weight=1

The same as JSON (``{"checkout": {"weight": 3}, "*": {...}}``) is accepted too, which
suits a ConfigMap file. Keys:

==================  ======================================================================
``weight``          share of admissions while producers compete (> 0; default 1)
``max_in_flight``   the producer's own cap on tasks at Akool (0 = only the global cap)
``rate_share``      at most this share of ``HEADSWAP_CREATE_RATE`` (0 < x <= 1; default 1)
``daily_budget``    credits a UTC day (0 = no budget)
``over_budget``     ``hold`` (jobs wait for the next day) or ``fail`` (reason
                    ``budget_exhausted``)
==================  ======================================================================
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any

#: The name that stands for every producer not listed.
OTHERS = "*"
#: The metric label of producers outside the listed ones (bounded cardinality).
OTHER_LABEL = "other"
DEFAULT_PRODUCER = "default"
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
OVER_BUDGET = ("hold", "fail")


class PolicyError(ValueError):
    """A policy that does not parse; the message names the producer and the key."""


@dataclass(frozen=True)
class ProducerPolicy:
    weight: float = 1.0
    max_in_flight: int = 0
    rate_share: float = 1.0
    daily_budget: float = 0.0
    over_budget: str = "hold"

    def as_plan(self) -> list[Any]:
        """``[weight, cap, share, budget, fail]`` as ``admit.lua`` takes it."""
        fail = 1 if self.over_budget == "fail" else 0
        return [self.weight, self.max_in_flight, self.rate_share, self.daily_budget, fail]


@dataclass(frozen=True)
class Policies:
    """The listed producers' policies and the one for everybody else."""

    listed: tuple[tuple[str, ProducerPolicy], ...] = ()
    others: ProducerPolicy = field(default_factory=ProducerPolicy)

    def of(self, producer: str) -> ProducerPolicy:
        return dict(self.listed).get(producer, self.others)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.listed)

    def label(self, producer: str | None) -> str:
        """The metric label for ``producer``: its name when listed (or ``default``), else
        ``other``: a producer cannot grow the metrics' series without bound."""
        name = producer or DEFAULT_PRODUCER
        return name if name == DEFAULT_PRODUCER or name in self.names else OTHER_LABEL

    def as_plan(self) -> dict[str, list[Any]]:
        plan = {name: policy.as_plan() for name, policy in self.listed}
        plan[OTHERS] = self.others.as_plan()
        return plan

    def describe(self) -> str:
        """The policies in the compact form (``headswap config``)."""
        return ";".join(f"{name}:{_compact(p)}" for name, p in (*self.listed,
                                                               (OTHERS, self.others)))


def _compact(policy: ProducerPolicy) -> str:
    return ",".join(f"{f.name}={getattr(policy, f.name)}" for f in fields(ProducerPolicy))


def parse_policies(text: str) -> Policies:
    """The policies in ``text`` (compact or JSON); raises :class:`PolicyError`."""
    text = text.strip()
    if not text:
        return Policies()
    entries = _json_entries(text) if text.startswith("{") else _compact_entries(text)
    listed: list[tuple[str, ProducerPolicy]] = []
    others = ProducerPolicy()
    for name, options in entries:
        if name != OTHERS and not _NAME.fullmatch(name):
            raise PolicyError(f"producer {name!r}: a name is 1-32 of a-z 0-9 _ . - (or *)")
        policy = _policy(name, options)
        if name == OTHERS:
            others = policy
        elif any(n == name for n, _ in listed):
            raise PolicyError(f"producer {name!r} is listed twice")
        else:
            listed.append((name, policy))
    return Policies(tuple(listed), others)


def _json_entries(text: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PolicyError(f"not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise PolicyError('JSON must map producer names to objects: {"name": {"weight": 2}}')
    return [(str(k), v) for k, v in data.items()]


def _compact_entries(text: str) -> list[tuple[str, dict[str, Any]]]:
    entries = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, sep, rest = part.partition(":")
        if not sep:
            raise PolicyError(f"{part!r}: expected name:key=value,...")
        options: dict[str, Any] = {}
        for item in filter(None, (i.strip() for i in rest.split(","))):
            key, eq, value = item.partition("=")
            if not eq:
                raise PolicyError(f"producer {name.strip()!r}: {item!r} is not key=value")
            options[key.strip()] = value.strip()
        entries.append((name.strip(), options))
    return entries


def _policy(name: str, options: dict[str, Any]) -> ProducerPolicy:
    known = {f.name for f in fields(ProducerPolicy)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise PolicyError(f"producer {name!r}: unknown key {unknown[0]!r} "
                          f"(known: {', '.join(sorted(known))})")  # fmt: skip
    weight = _number(name, "weight", options.get("weight", 1.0))
    cap = _number(name, "max_in_flight", options.get("max_in_flight", 0))
    share = _number(name, "rate_share", options.get("rate_share", 1.0))
    budget = _number(name, "daily_budget", options.get("daily_budget", 0.0))
    over = str(options.get("over_budget", "hold"))
    if weight <= 0 or weight > 1000:
        raise PolicyError(f"producer {name!r}: weight must be > 0 and <= 1000")
    if cap < 0 or cap != int(cap):
        raise PolicyError(f"producer {name!r}: max_in_flight must be a whole number >= 0")
    if not 0 < share <= 1:
        raise PolicyError(f"producer {name!r}: rate_share must be > 0 and <= 1")
    if budget < 0:
        raise PolicyError(f"producer {name!r}: daily_budget must be >= 0")
    if over not in OVER_BUDGET:
        raise PolicyError(f"producer {name!r}: over_budget must be hold or fail")
    return ProducerPolicy(weight, int(cap), share, budget, over)


def _number(name: str, key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise PolicyError(f"producer {name!r}: {key} must be a number, not {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise PolicyError(f"producer {name!r}: {key} must be a finite number")
    return number
