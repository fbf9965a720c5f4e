"""Fair admission's writes in Redis: the rounds (``admit.lua``) and grants given back
(``ungrant.lua``); ``transition.lua`` keeps the counts and grants in step with every move.
The reads (lines, positions) are the producers' too: ``headswap_client.admission``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from headswap_client.admission import AdmissionView
from headswap_client.keys import Keys

from worker.store.scripts import Scripts


@dataclass(frozen=True)
class Admitted:
    """What one admission round did (server time ``now``)."""

    admitted: tuple[tuple[str, float, str], ...] = ()  # (job id, s until its slot, producer)
    failed: tuple[str, ...] = ()  # over budget, policy fail: the caller fails them
    held: tuple[str, ...] = ()  # producers over budget since this round
    waiting: int = 0  # jobs left in the lines
    wait: float = 0.0  # seconds until the create rate admits the next one
    now: float = 0.0
    joined: bool = False  # the joining job entered its line in this round
    #: The joining job's grant, this round's or an earlier one's: (create slot, admitted
    #: at), server time; None when it waits in its line.
    grant: tuple[float, float] | None = None


class AdmissionStore(AdmissionView):
    def __init__(self, client: redis.Redis, keys: Keys, scripts: Scripts) -> None:
        super().__init__(client, keys)
        self._scripts = scripts

    def admit(self, join: str | None, plan: Mapping[str, Any],
              circuits: tuple[str, str, str]) -> Admitted:  # fmt: skip
        """One round of ``admit.lua``; ``join``: a queued job to put in its line first;
        ``circuits``: the three circuits (credits, breaker, store lost) that stop it."""
        k = self._keys
        keys = [
            k.admit_line, k.admit_counts, k.admit_state, k.admit_rate, k.ledger,
            k.schedule("inflight"), k.schedule("wakeup"), k.rate("create"), k.events,
            *(k.circuit(name) for name in circuits),
            k.admit_grants, k.job(join) if join else k.admit_grants,
        ]  # fmt: skip
        body = {**plan, "join": bool(join)}
        admitted, failed, held, waiting, wait, now, joined, grant = self._scripts(
            "admit", keys, [json.dumps(body)])  # fmt: skip
        rows = tuple((str(admitted[i]), float(admitted[i + 1]), str(admitted[i + 2]))
                     for i in range(0, len(admitted), 3))  # fmt: skip
        return Admitted(rows, tuple(map(str, failed)), tuple(map(str, held)), int(waiting),
                        float(wait), float(now), bool(joined), _grant(grant))  # fmt: skip

    def ungrant(self, job_id: str) -> bool:
        """Give an admitted job's grant and in-flight slot back; it returns to its line."""
        k = self._keys
        keys = [k.job(job_id), k.admit_line, k.admit_counts, k.admit_grants,
                k.schedule("inflight")]  # fmt: skip
        return bool(self._scripts("ungrant", keys, []))

    def grant(self, job_id: str) -> tuple[float, float] | None:
        """``(create slot, admitted at)`` of a granted job (server time), else None."""
        return _grant(self._redis.hget(self._keys.admit_grants, job_id))

def _grant(value: Any) -> tuple[float, float] | None:
    if not value:
        return None
    slot, _, at = str(value).partition(" ")
    return float(slot), float(at or slot)


