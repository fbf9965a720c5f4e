"""The Akool Open API emulator ("sandbox"): a real HTTP server run as its own process.

It speaks the head-swap v4 API as ``shared/akool-headswap-api.md`` describes it (token and
key auth, analysis, create, detail, error codes, signed and encrypted webhooks) and has
knobs for timing, faults, credits and concurrency. ``docs/SANDBOX.md`` is the manual.

Modules, one concept each:

- :mod:`.knobs`      the tunable settings (CLI flags and ``/_sandbox/config``)
- :mod:`.codes`      result codes, messages and the :class:`~.codes.Rejection` exception
- :mod:`.ids`        ObjectId-like ids and JWT-shaped tokens
- :mod:`.videos`     deterministic per-URL behaviour (persons, duration, forced failures)
- :mod:`.validation` request-body checks for analyze and create
- :mod:`.records`    analysis and task records, lazy status from timestamps
- :mod:`.auth`       the token store and header authentication
- :mod:`.faults`     injected latency, 429 bursts, 5xx, hangs
- :mod:`.stats`      counters for ``/_sandbox/stats``
- :mod:`.scheduler`  one thread firing callbacks at due times
- :mod:`.webhooks`   sealing and posting deliveries from a small thread pool
- :mod:`.engine`     the in-memory state under one lock
- :mod:`.app`        the WSGI routes
- :mod:`.server`     process lifecycle: bind, serve, shut down on SIGTERM/SIGINT
- :mod:`.cli`        ``headswap sandbox`` / ``python -m worker.sandbox``
"""
