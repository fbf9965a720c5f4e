"""Loaded into the measured workers (``--include bench.lag_probe``): every poll lag the
worker observes (``worker.metrics.observe_poll_lag``: a detail call's server time minus the
time its member was due) is also kept, exactly, with the wall clock of the call, in the
Redis list ``bench:poll_lag`` (``"<time> <lag>"`` entries, flushed twice a second by one
thread, so the poll path pays an append to a list, not a round trip).

The histogram's buckets are too coarse for a p99 against a 2 s target; these values are
the same observations, unbucketed.
"""

from __future__ import annotations

import os
import threading
import time

import redis

from worker import metrics

LAG_KEY = "bench:poll_lag"
FLUSH_SECONDS = 0.5

_pending: list[str] = []
_lock = threading.Lock()
_observe = metrics.observe_poll_lag


_flusher: list[threading.Thread] = []


def _record(seconds: float) -> None:
    _observe(seconds)
    entry = f"{time.time():.3f} {seconds:.4f}"
    with _lock:
        _pending.append(entry)
        if not _flusher:  # the first poll of this process (the bench imports LAG_KEY only)
            _flusher.append(threading.Thread(target=_flush_forever, name="bench-lag-probe",
                                             daemon=True))
            _flusher[0].start()


def _flush_forever() -> None:
    client = redis.Redis.from_url(os.environ["HEADSWAP_REDIS_URL"])
    while True:
        time.sleep(FLUSH_SECONDS)
        with _lock:
            batch = _pending[:]
            _pending.clear()
        if batch:
            client.rpush(LAG_KEY, *batch)


metrics.observe_poll_lag = _record  # type: ignore[assignment]
