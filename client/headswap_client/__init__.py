"""headswap-client: run Akool head swaps on a headswap worker deployment from Python.

::

    from headswap_client import Producer, JobValidationError

    with Producer() as producer:               # HEADSWAP_REDIS_URL, HEADSWAP_KEY_PREFIX...
        job_id = producer.submit(video_url=..., mappings=[...], resolution="720p")
        job = producer.wait(job_id, timeout=600)

Modules, one concept each: :mod:`~headswap_client.producer` (the API),
:mod:`~headswap_client.settings`, :mod:`~headswap_client.schemas` (the message contract,
with ``contract/submit.schema.json``), :mod:`~headswap_client.signing` (checking HTTP
callbacks), :mod:`~headswap_client.errors`; and what the workers share with producers:
:mod:`~headswap_client.keys` (every Redis key), :mod:`~headswap_client.codec` (the record's
encoding), :mod:`~headswap_client.records`, :mod:`~headswap_client.states`,
:mod:`~headswap_client.store`, :mod:`~headswap_client.events`, ``lua/``.

Names here are loaded on first use: ``from headswap_client import
verify_callback_signature`` in a web receiver loads the signing module alone (no Redis,
kombu or marshmallow).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headswap_client.errors import ConfigError, HeadswapError, JobValidationError
    from headswap_client.producer import Producer
    from headswap_client.schemas import ContractPolicy, validate_job
    from headswap_client.settings import ClientSettings
    from headswap_client.signing import verify_callback_signature

_HOMES = {
    "Producer": "producer",
    "ClientSettings": "settings",
    "ConfigError": "errors",
    "HeadswapError": "errors",
    "JobValidationError": "errors",
    "ContractPolicy": "schemas",
    "validate_job": "schemas",
    "verify_callback_signature": "signing",
}

__all__ = [
    "ClientSettings",
    "ConfigError",
    "ContractPolicy",
    "HeadswapError",
    "JobValidationError",
    "Producer",
    "validate_job",
    "verify_callback_signature",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'headswap_client' has no attribute {name!r}")
    return getattr(importlib.import_module(f"headswap_client.{home}"), name)
