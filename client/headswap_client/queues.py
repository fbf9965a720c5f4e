"""The queue names of the contract: workers consume them, producers send to them.

Each queue has its own direct exchange and routing key, both named like the queue
(``config.celery.queue_object`` on the worker's side); a message published on the default
exchange with the queue's name as routing key lands in the same Redis list.
"""

from __future__ import annotations

from typing import Final

SUBMIT_QUEUE: Final = "headswap.submit"
POLL_QUEUE: Final = "headswap.poll"
NOTIFY_QUEUE: Final = "headswap.notify"
#: Copies of finished videos to durable storage: long transfers get a queue of their own,
#: so they never hold up polls or notifications (and can get workers of their own).
STORE_QUEUE: Final = "headswap.store"
#: The one list of queues (workers consume them, ops and metrics report them).
QUEUES: Final = (SUBMIT_QUEUE, POLL_QUEUE, NOTIFY_QUEUE, STORE_QUEUE)
