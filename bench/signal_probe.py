"""Loaded into the measured workers (``--include bench.signal_probe``): stamps each
``job_succeeded`` / ``job_failed`` signal with the wall clock, in a Redis list.

The bench reads ``bench:signals`` to know when each job reached its signal, which is what
a producer's receiver connected in the worker process would see. The webhook receiver is
started through this module too, so a signal fired there is seen (and counted apart:
producers load their receivers into the workers).
"""

from __future__ import annotations

import functools
import json
import os
import time
from typing import Any

import redis

from worker import signals

SIGNALS_KEY = "bench:signals"
#: Which kind of process fired a signal: a Celery worker, or the webhook receiver when this
#: module runs it (``python -m bench.signal_probe webhook ...``).
ROLE = "webhook" if __name__ == "__main__" else "worker"


@functools.cache
def _redis() -> redis.Redis:
    return redis.Redis.from_url(os.environ["HEADSWAP_REDIS_URL"])


def _record(sender: Any, job: dict[str, Any] | None = None, **_: Any) -> None:
    job = job or {}
    entry = {"job_id": job.get("job_id"), "state": job.get("state"), "at": time.time(),
             "process": ROLE}
    _redis().rpush(SIGNALS_KEY, json.dumps(entry, separators=(",", ":")))


signals.job_succeeded.connect(_record, weak=False)
signals.job_failed.connect(_record, weak=False)


if __name__ == "__main__":
    # ``headswap webhook`` with this probe loaded: shows whether signals fire there.
    import sys

    from worker.cli import main

    sys.exit(main(sys.argv[1:]))
