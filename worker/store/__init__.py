"""The Redis store: the only module that holds the Redis client.

- :mod:`headswap_client.keys` — every key name (``Keys(prefix)``), shared with producers
- :mod:`worker.store.job_store` — :class:`JobStore`: records, the transition step, schedules
  (it extends the producer's :class:`headswap_client.store.ClientStore`)
- :mod:`worker.store.analyses`, :mod:`~worker.store.callbacks`, :mod:`~worker.store.guards`,
  :mod:`~worker.store.events` — its parts (``store.analyses`` ...)
- :mod:`worker.store.dead_messages` — queue entries no worker could take (bytes client)
- :mod:`worker.store.misrouted` — our messages in Celery's default queue (bytes client)
- :data:`StoreError` — what every store call raises when Redis fails (retry layers name it)
- ``lua/*.lua`` — the scripts, each documenting its KEYS and ARGV (``create`` and
  ``transition`` are the producers' too: ``headswap_client/lua``)
"""

from headswap_client.codec import clean_text, decode_record, fingerprint
from headswap_client.keys import Keys, url_hash
from headswap_client.store import Created
from redis.exceptions import RedisError as StoreError

from worker.store.connect import open_dead_messages, open_misrouted, open_store, redis_client
from worker.store.dead_messages import RAW_CAP, DeadMessage, DeadMessages
from worker.store.job_store import JobStore, Moved, Snapshot
from worker.store.misrouted import MisroutedMessages, Waiting

__all__ = [
    "RAW_CAP",
    "Created",
    "DeadMessage",
    "DeadMessages",
    "JobStore",
    "Keys",
    "MisroutedMessages",
    "Moved",
    "Snapshot",
    "StoreError",
    "Waiting",
    "clean_text",
    "decode_record",
    "fingerprint",
    "open_dead_messages",
    "open_misrouted",
    "open_store",
    "redis_client",
    "url_hash",
]  # fmt: skip
