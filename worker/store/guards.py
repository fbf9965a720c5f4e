"""The store's small coordination primitives: locks, circuits, webhook nonces, global
rates and beat ticks. Each is one Redis command or one script, on the server's clock."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import cast

import redis
from headswap_client.keys import Keys

from worker.store.scripts import Scripts


class Guards:
    def __init__(self, client: redis.Redis, keys: Keys, scripts: Scripts) -> None:
        self._redis = client
        self._keys = keys
        self._scripts = scripts

    # --- locks --------------------------------------------------------------------------
    def lock(self, name: str, ident: str, ttl: float) -> str | None:
        """A token when the lock ``name:ident`` was free (it expires after ``ttl``)."""
        token = uuid.uuid4().hex
        key = self._keys.lock(name, ident)
        if self._redis.set(key, token, nx=True, px=max(1, int(ttl * 1000))):
            return token
        return None

    def unlock(self, name: str, ident: str, token: str) -> bool:
        return bool(self._scripts("release", [self._keys.lock(name, ident)], [token]))

    # --- circuits -----------------------------------------------------------------------
    def open_circuit(self, name: str, pause: float) -> tuple[bool, float]:
        """Pause ``name`` for everyone unless it is paused: ``(opened by us, seconds left)``."""
        opened, left = self._scripts("circuit", [self._keys.circuit(name)], [repr(float(pause))])
        return bool(opened), float(left)

    def hold(self, name: str, reason: str, days: float = 30.0) -> bool:
        """Open the circuit ``name`` until an operator lifts it (:meth:`lift`); it still
        expires after ``days``, so a forgotten hold does not outlive a month. True when
        this call opened it. ``reason`` is kept beside it."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(self._keys.circuit(name), "held", nx=True, ex=int(days * 86400))
        pipe.set(self._keys.circuit(name) + ":reason", reason, ex=int(days * 86400))
        opened, _ = pipe.execute()
        return bool(opened)

    def held(self, name: str) -> str | None:
        """The reason of the hold ``name``, or None when it is not held."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.exists(self._keys.circuit(name))
        pipe.get(self._keys.circuit(name) + ":reason")
        exists, reason = pipe.execute()
        return str(reason or "held") if exists else None

    def lift(self, name: str) -> bool:
        """End the hold ``name``; True when there was one."""
        return bool(self._redis.delete(self._keys.circuit(name),
                                       self._keys.circuit(name) + ":reason"))  # fmt: skip

    def paused_for(self, name: str) -> float | None:
        """Seconds until the pause ``name`` ends, or None when it is not paused. The key
        expires when the pause ends, so its PTTL (the server's clock) is the answer: one
        plain read on every submit, no script."""
        left_ms = int(cast(int, self._redis.pttl(self._keys.circuit(name))))
        return left_ms / 1000 if left_ms > 0 else None

    # --- breakers (a circuit opened by consecutive failures) ----------------------------
    def circuits(self, names: Sequence[str], breaker: str) -> tuple[list[float | None], int]:
        """:meth:`paused_for` of each of ``names`` and the consecutive failures counted by
        the breaker ``breaker``, in one round trip (read on every submit)."""
        pipe = self._redis.pipeline(transaction=False)
        for name in names:
            pipe.pttl(self._keys.circuit(name))
        pipe.get(self._keys.failures(breaker))
        *lefts, failures = pipe.execute()
        return [int(ms) / 1000 if int(ms) > 0 else None for ms in lefts], int(failures or 0)

    def breaker_failure(
        self, name: str, threshold: int, first_pause: float, longest_pause: float,
        window: float,
    ) -> tuple[bool, float, int]:
        """One more consecutive failure: ``(opened by us, seconds open, failures)``."""
        opened, left, failures = self._scripts(
            "breaker", [self._keys.failures(name), self._keys.circuit(name)],
            [threshold, repr(float(first_pause)), repr(float(longest_pause)),
             repr(float(window))],
        )  # fmt: skip
        return bool(opened), float(left), int(failures)

    def breaker_reset(self, name: str) -> bool:
        """The service answers again: failures forgotten, circuit closed. True when there
        was something to forget."""
        return bool(self._redis.delete(self._keys.failures(name), self._keys.circuit(name)))

    # --- the webhook receiver's presence --------------------------------------------------
    def receiver_alive(self, ttl: float) -> None:
        """A receiver process that can reach Redis says so (every few seconds): ``up_since``
        keeps the server time of the first such word after a silence longer than ``ttl``."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.time()
        (secs, micros), = pipe.execute()
        now = f"{secs + micros / 1_000_000:.3f}"
        key = self._keys.receiver_up_since
        pipe = self._redis.pipeline(transaction=True)
        pipe.set(key, now, nx=True, px=max(1, int(ttl * 1000)))
        pipe.pexpire(key, max(1, int(ttl * 1000)))
        pipe.execute()

    def receiver_turned_away(self, ttl: float) -> None:
        """A receiver had to refuse a delivery only it could apply (503: Akool's detail was
        unavailable, so a binding could not be confirmed): to the resubmit policy that is
        as good as no receiver, so ``up_since`` starts again now."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.time()
        (secs, micros), = pipe.execute()
        self._redis.set(self._keys.receiver_up_since, f"{secs + micros / 1_000_000:.3f}",
                        px=max(1, int(ttl * 1000)))  # fmt: skip

    def receiver_up_since(self) -> tuple[float | None, float]:
        """``(since when a receiver has been reachable without a gap, or None; now)`` by the
        server clock."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.time()
        pipe.get(self._keys.receiver_up_since)
        (secs, micros), since = pipe.execute()
        return (float(since) if since else None), secs + micros / 1_000_000

    # --- webhook nonces -----------------------------------------------------------------
    def nonce_seen(self, digest: str) -> bool:
        return bool(self._redis.exists(self._keys.nonce(digest)))

    def use_nonce(self, digest: str, ttl: int) -> bool:
        """Record a delivery that changed no job; False when it was recorded already."""
        return bool(self._redis.set(self._keys.nonce(digest), "1", nx=True, ex=max(1, ttl)))

    # --- global rates -------------------------------------------------------------------
    def rate_wait(self, name: str, interval: float, burst: int) -> float:
        """0 when a call may go now, else the seconds to wait (GCRA, one script)."""
        wait_us = self._scripts("gcra", [self._keys.rate(name)], [repr(interval), burst])
        return int(wait_us) / 1_000_000

    # --- beat ticks ---------------------------------------------------------------------
    def tick(self, task: str, min_gap: float) -> float | None:
        """Record that beat task ``task`` runs now. Returns the seconds since its previous
        run, or None when it ran less than ``min_gap`` ago (a tick to skip: ticks that
        piled up, or a second beat). Server clock: no process's own clock matters."""
        key = self._keys.beat(task)
        pipe = self._redis.pipeline(transaction=True)
        pipe.time()
        pipe.get(key)
        (secs, micros), previous = pipe.execute()
        now = secs + micros / 1_000_000
        last = float(previous) if previous else 0.0
        if previous and now - last < min_gap:
            return None
        self._redis.set(key, f"{now:.3f}", ex=7 * 24 * 3600)
        return now - last if previous else 0.0

    def last_tick_age(self, task: str) -> float | None:
        """Seconds since beat task ``task`` last ran (server clock), None if never."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.time()
        pipe.get(self._keys.beat(task))
        (secs, micros), previous = pipe.execute()
        if not previous:
            return None
        age: float = secs + micros / 1_000_000 - float(str(previous))
        return max(0.0, age)

    # --- the poll fan-out ---------------------------------------------------------------
    def fan_out_view(self, queue: str) -> tuple[float, int, tuple[int, float] | None]:
        """``(now, messages waiting in queue, what the previous fan-out left)`` in one round
        trip: the previous fan-out's ``(messages waiting after it, its server time)``, or
        None when there was none (or it is forgotten: a day without a tick)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.time()
        pipe.llen(queue)
        pipe.hmget(self._keys.beat("poll_fan_out"), ["waiting", "at"])
        (secs, micros), waiting, (left, at) = pipe.execute()
        previous = (int(left), float(at)) if left is not None and at is not None else None
        return secs + micros / 1_000_000, int(waiting), previous

    def fan_out_done(self, waiting: int, at: float) -> None:
        """Record a fan-out: ``waiting`` messages in the queue after it, at server time ``at``."""
        key = self._keys.beat("poll_fan_out")
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"waiting": waiting, "at": f"{at:.3f}"})
        pipe.expire(key, 24 * 3600)
        pipe.execute()
