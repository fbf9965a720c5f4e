"""Hooks into the life of Celery worker and beat processes: logging, heartbeat file,
presence record, metrics server, shutdown. ``worker.app`` connects them, so every worker
and beat process (``headswap worker``, ``headswap beat``) gets them."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from celery.signals import (
    beat_init,
    celeryd_init,
    heartbeat_sent,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutting_down,
)
from celery.signals import setup_logging as celery_setup_logging

from config.celery import OBSOLETE_BINDINGS
from config.logs import set_hostname, setup_logging
from config.settings import Settings
from worker import breaker, health, signals, submission, tracing
from worker.metrics import start_metrics_server
from worker.runtime import Runtime
from worker.store import JobStore, StoreError, open_store
from worker.store.presence import REFRESH_SECONDS

log = logging.getLogger(__name__)

#: How often the watchdog looks, and when a Celery heartbeat counts as late (they come
#: every ~2 s while the consumer runs).
WATCHDOG_INTERVAL_SECONDS = 2.0
HEARTBEAT_LATE_SECONDS = 10.0


class Hooks:
    """The process's hooks; ``runtime`` builds its runtime when first needed."""

    def __init__(self, settings: Settings, runtime: Callable[[], Runtime]) -> None:
        self.settings = settings
        self.runtime = runtime
        self.hostname: str | None = None
        self.announced_at = 0.0
        self.epoch: float | None = None
        self.started = 0.0
        self.beat_silent = False
        self.risks: dict[str, str] | None = None
        self.evicted: int | None = None

    def own_logging(self, **_: Any) -> None:
        """With a receiver connected Celery leaves logging alone (otherwise it resets the
        root logger to WARNING and its own format): ``HEADSWAP_LOG_FORMAT``/``LOG_LEVEL``
        apply."""
        setup_logging(self.settings)

    def trace_worker(self, sender: Any = None, **_: Any) -> None:
        """Tracing (``OTEL_*``) in the worker process — unless its pool forks: a span
        exporter's thread does not survive a fork, so prefork children set it up
        themselves (:meth:`trace_child`)."""
        if "prefork" not in str(getattr(sender, "pool_cls", "")).lower():
            tracing.setup("headswap-worker")

    def trace_child(self, **_: Any) -> None:
        tracing.setup("headswap-worker")

    def trace_beat(self, **_: Any) -> None:
        tracing.setup("headswap-beat")

    def named(self, sender: Any = None, **_: Any) -> None:
        """A worker's lines carry its Celery node name (``w1@pod``) as ``hostname``."""
        set_hostname(sender if isinstance(sender, str) else None)

    def ready(self, sender: Any = None, **_: Any) -> None:
        self.touch(min_interval=0)
        self.hostname = getattr(sender, "hostname", None)
        self.started = time.monotonic()
        threading.Thread(target=self.watchdog, name="headswap-watchdog", daemon=True).start()
        self.announce()
        try:
            removed = self.runtime().store.drop_bindings(OBSOLETE_BINDINGS)
        except StoreError:
            removed = 0  # the next worker to start tries again
        if removed:
            log.warning("obsolete queue bindings removed", extra={"count": removed})
        self.check_redis()
        self.apply_spool()
        port = int(os.environ.get("HEADSWAP_METRICS_PORT", "0") or 0)
        if port:
            start_metrics_server(port, self.runtime().store, component="worker",
                                 breaker_failures=self.settings.akool_breaker_failures,
                                 producer_label=self.settings.producer_policy.label)

    def check_redis(self) -> None:
        """Say at start, and whenever it changes, what in Redis's configuration can lose
        jobs (an evicting policy is an error: jobs vanish silently — `headswap worker`
        refuses to start on one unless HEADSWAP_ALLOW_EVICTION; no append-only file a
        warning)."""
        try:
            risks = self.runtime().store.server_risks()
        except StoreError:
            return
        if risks == self.risks:
            return
        self.risks = risks
        if "eviction" in risks:
            log.error("redis can evict jobs", extra={
                "risk": risks["eviction"], "allowed": self.settings.allow_eviction})
        if "persistence" in risks:
            log.warning("redis does not persist jobs", extra={"risk": risks["persistence"]})

    def apply_spool(self) -> None:
        """Record the created tasks a stopped worker (or a Redis outage) left in the spool."""
        rt = self.runtime()
        if not rt.spool.entries():
            return
        try:
            applied = submission.apply_spool(rt)
        except StoreError:
            return  # Redis still away: the next refresh tries again
        if applied:
            log.warning("created tasks recorded from the spool", extra={"count": applied})

    def announce(self) -> None:
        if not self.hostname:
            return
        try:
            store = self.runtime().store
            store.workers.announce(self.hostname, os.getpid())
            self.announced_at = time.monotonic()
        except StoreError as exc:  # the next heartbeat tries again
            log.warning("presence record not written", extra={"error": type(exc).__name__})

    def check_epoch(self, epoch: float, partly_lost: bool = False) -> None:
        """A Redis that lost its data (restarted without persistence, flushed, evicted)
        looks like a healthy empty system: say so, once per loss, in every worker, and
        hold all creates (the store-lost hold) until an operator has reconciled against
        Akool and runs ``headswap store-lost --ack``: producers re-sending with the same
        idempotency keys would otherwise create, and pay for, every task twice."""
        if self.epoch is not None and epoch != self.epoch:
            log.error(
                "redis lost its data: every job, schedule and idempotency key written before "
                "is gone (restarted empty, flushed or evicted); producers must re-send, and "
                "tasks already created at Akool are not known here",
                extra={"data_since": epoch, "previous_data_since": self.epoch},
            )
            self.hold_store_lost(f"the data epoch changed from {self.epoch:.3f} to "
                                 f"{epoch:.3f}: Redis restarted empty, or was flushed")
        elif partly_lost:
            log.error("redis lost part of its data: the epoch key is gone while jobs remain "
                      "(evicted?)", extra={"data_since": epoch})
            self.hold_store_lost("the epoch key vanished while jobs remained: eviction, or "
                                 "a partial loss")
        self.epoch = epoch

    def hold_store_lost(self, reason: str) -> None:
        rt = self.runtime()
        if rt.store.guards.hold(breaker.STORE_LOST, reason):
            rt.store.events.alert({"alert": "store_lost", "reason": reason})
            signals.store_lost.send(sender="headswap", reason=reason)
            log.error("creates are held until `headswap store-lost --ack` (reconcile against "
                      "Akool first, see OPERATIONS.md)", extra={"reason": reason})

    def touch(self, min_interval: float = 2.0) -> None:
        """The liveness file; a write that fails is logged (the probe will tell) and never
        stops the presence record or the worker."""
        try:
            health.touch(min_interval=min_interval)
        except OSError as exc:
            log.warning("heartbeat file not written", extra={"error": str(exc)})

    def watchdog(self) -> None:
        """Keep the liveness file fresh while Celery's heartbeats are late because Redis
        does not answer (status ``waiting-for-redis``: liveness passes, readiness fails);
        late heartbeats while Redis answers are a stuck worker, left to fail liveness."""
        rt = self.runtime()
        # Its own client: short timeouts, no retries. The store's (10 s timeout, retried)
        # took 40 s to give up on a hung (SIGSTOPped) Redis, so the file went stale.
        probe = open_store(self.settings, quick=True)
        waiting = False
        self.look(probe)  # the epoch as this worker first sees it, at once
        while not rt.stopping.wait(WATCHDOG_INTERVAL_SECONDS):
            if health.since_heartbeat() < HEARTBEAT_LATE_SECONDS:
                waiting = False
                self.look(probe)
                continue
            try:
                answers = probe.ping()
            except StoreError:
                answers = False
            if health.watchdog_should_touch(health.since_heartbeat(), answers,
                                            HEARTBEAT_LATE_SECONDS):  # fmt: skip
                if not waiting:
                    log.warning("waiting for Redis: alive (liveness), not ready")
                waiting = True
                try:
                    health.touch(status=health.WAITING_FOR_REDIS)
                except OSError as exc:
                    log.warning("heartbeat file not written", extra={"error": str(exc)})
            elif waiting:
                log.warning("Redis answers again; waiting for Celery's heartbeat")
                waiting = False

    def look(self, probe: JobStore) -> None:
        """The watchdog's rounds while Redis answers: data loss (within one round, not a
        presence refresh), the store-lost hold (readiness), beat silence."""
        try:
            self.check_epoch(*probe.epoch_status())
            self.check_evictions(probe.evicted_keys())
            self.check_hold(probe)
            self.check_beat(probe)
        except StoreError:
            return  # Redis away: the heartbeat branch says so

    def check_evictions(self, evicted: int | None) -> None:
        """Keys evicted while this worker runs (INFO's ``evicted_keys`` grew) may be job
        records, locks or idempotency keys: hold creates as for a loss. (The epoch key
        itself is read every round, so LRU keeps it: it cannot tell an eviction.)"""
        if evicted is None:
            return
        if self.evicted is not None and evicted > self.evicted:
            log.error("redis evicted keys: job records, locks or idempotency keys may be gone",
                      extra={"evicted": evicted - self.evicted})
            self.hold_store_lost(f"Redis evicted {evicted - self.evicted} keys while workers "
                                 "ran (maxmemory-policy evicts)")
        self.evicted = evicted

    def check_hold(self, store: JobStore) -> None:
        """Readiness fails while creates are held because Redis lost our data."""
        held = store.guards.held(breaker.STORE_LOST)
        health.set_condition(health.STORE_LOST if held else None)

    def check_beat(self, store: JobStore) -> None:
        """Beat silence is an alarm, not a quiet standstill: a poll tick missing for longer
        than ``HEADSWAP_BEAT_SILENCE_SECONDS`` (server clock) is logged at ERROR, once per
        silence, by every worker; ``headswap_beat_last_tick_age_seconds`` shows it too."""
        limit = self.settings.beat_silence_seconds
        age = store.guards.last_tick_age("poll_due")
        if age is None:  # no tick ever: silent once this worker has waited long enough
            age = time.monotonic() - self.started if self.started else 0.0
        if age > limit and not self.beat_silent:
            self.beat_silent = True
            log.error("beat is silent: no poll tick for %.0f s (limit %.0f s); nothing polls, "
                      "wakes waiting jobs or sweeps until headswap beat runs and headswap.poll "
                      "is consumed", age, limit, extra={"tick_age_s": round(age, 1)})
        elif age <= limit and self.beat_silent:
            self.beat_silent = False
            log.warning("beat ticks again", extra={"tick_age_s": round(age, 1)})

    def heartbeat(self, **_: Any) -> None:
        self.touch()
        if time.monotonic() - self.announced_at >= REFRESH_SECONDS:
            self.announce()
            self.apply_spool()
            self.check_redis()

    def shutting_down(self, sig: str = "", how: str = "", exitcode: int = 0, **_: Any) -> None:
        health.clear()  # readiness fails at once: no new work is routed here while draining
        self.runtime().stopping.set()  # endless retries (a created task's id) end; spooled
        hostname, self.hostname = self.hostname, None
        if hostname:
            with contextlib.suppress(StoreError):  # else the record expires on its own
                self.runtime().store.workers.withdraw(hostname)
        log.info("worker shutting down", extra={"signal": sig, "how": how})
        tracing.flush()


def connect(settings: Settings, runtime: Callable[[], Runtime]) -> Hooks:
    hooks = Hooks(settings, runtime)
    celery_setup_logging.connect(hooks.own_logging, weak=False)
    worker_init.connect(hooks.trace_worker, weak=False)
    worker_process_init.connect(hooks.trace_child, weak=False)
    beat_init.connect(hooks.trace_beat, weak=False)
    worker_process_shutdown.connect(lambda **_: tracing.flush(), weak=False)
    celeryd_init.connect(hooks.named, weak=False)
    worker_ready.connect(hooks.ready, weak=False)
    heartbeat_sent.connect(hooks.heartbeat, weak=False)
    worker_shutting_down.connect(hooks.shutting_down, weak=False)
    return hooks
