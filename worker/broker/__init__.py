"""The broker's edge: queue entries that are not tasks of ours are quarantined, never fatal.

- :mod:`worker.broker.envelope` — pure: what is wrong with an entry's bytes (a reason, or
  nothing), a safe preview, the reasons' names
- :mod:`worker.broker.transport` — the kombu Redis transport with a channel that screens
  every popped entry before kombu reads it (``broker_transport``)
- :mod:`worker.broker.consumer` — the Celery consumer whose "unknown / invalid / undecodable
  message" hooks quarantine instead of dropping (``worker_consumer``)

Both keep the entry in ``{prefix}:dead-messages`` (:mod:`worker.store.dead_messages`),
count it (``headswap_dead_messages_total``) and log it once. docs/RELIABILITY.md has the
table of which layer sees which case.
"""
