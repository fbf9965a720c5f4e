"""HTTP callbacks to producers: the final job record POSTed to the job's ``callback_url``.

:func:`worker.notify.notify` enqueues ``headswap.deliver_callback`` (queue
``headswap.notify``, argument: the job id only) for a terminal job with a ``callback_url``;
each task run makes one attempt, so a slow producer endpoint never holds up a
notification. One module per concept:

- :mod:`headswap_client.signing` — the signature headers and
  :func:`verify_callback_signature`: the part producers import, so it lives in the
  client distribution (this package's namespace re-exports it for existing receivers);
- :mod:`~worker.callbacks.addresses` — which addresses a callback may reach (SSRF);
- :mod:`~worker.callbacks.transport` — the URL split for a pinned connection, the session;
- :mod:`~worker.callbacks.delivery` — one attempt, its verdict and its retry delay;
- :mod:`~worker.callbacks.dead_letters` — callbacks given up on, and the bookkeeping on
  the job record (``callback_status`` = ``pending`` | ``delivered`` | ``failed``,
  ``callback_attempts``, ``callback_last_status``, ``callback_error``).

Callbacks follow Standard Webhooks (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``). Delivery is at least once: a receiver deduplicates by
``webhook-id`` (``<job_id>:<state>``, the same on every attempt). The secrets
(``HEADSWAP_CALLBACK_SECRETS``, ``whsec_...``) are read from settings by the delivery
alone, and neither they nor a signature are ever logged.
"""

from headswap_client.signing import (
    DEFAULT_TOLERANCE_SECONDS,
    HEADER_ATTEMPT,
    HEADER_ID,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    SECRET_PREFIX,
    SIGNATURE_VERSION,
    event_id,
    headers_for,
    new_secret,
    parse_secret,
    sign,
    verify_callback_signature,
)

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "HEADER_ATTEMPT",
    "HEADER_ID",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "SECRET_PREFIX",
    "SIGNATURE_VERSION",
    "event_id",
    "headers_for",
    "new_secret",
    "parse_secret",
    "sign",
    "verify_callback_signature",
]
