"""Trace context for producers (OpenTelemetry): used when the host application traces.

The client configures no tracer provider and exports nothing itself: a backend that has
set up OpenTelemetry (its SDK, ``OTEL_*`` variables, an ``opentelemetry-instrument``
run) gets, for each :meth:`~headswap_client.producer.Producer.submit`, a span
``headswap.producer.submit`` with a child ``apply_async/<task>`` around the publish (the
names Celery's instrumentation gives), the W3C context in the message headers
(``traceparent``, ``tracestate``: the workers' Celery instrumentation continues the trace
from them) and in the job's record (``traceparent``: polls, the webhook, notify and the
callback, later and elsewhere, continue it from there). A process that has not imported
``opentelemetry`` never imports it here: every function is then a no-op.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

#: The job record's field that holds the job's trace context.
RECORD_FIELD = "traceparent"
TRACER_NAME = "headswap_client"


def active() -> bool:
    """Whether the host application uses OpenTelemetry (it imported the API)."""
    return "opentelemetry.trace" in sys.modules


@contextlib.contextmanager
def span(name: str, *, producer: bool = False, **attributes: Any) -> Iterator[Any]:
    """A span of the current trace (``headswap.*`` attributes), or None when not tracing."""
    if not active():
        yield None
        return
    from opentelemetry import trace

    kind = trace.SpanKind.PRODUCER if producer else trace.SpanKind.INTERNAL
    attrs = {f"headswap.{k}": v for k, v in attributes.items() if v is not None}
    with trace.get_tracer(TRACER_NAME).start_as_current_span(name, kind=kind,
                                                             attributes=attrs) as current:
        yield current


def set_attributes(current: Any, **attributes: Any) -> None:
    if current is not None:
        current.set_attributes({f"headswap.{k}": v for k, v in attributes.items()
                                if v is not None})  # fmt: skip


def carrier() -> dict[str, str]:
    """The current context as W3C headers (``traceparent``, ``tracestate``); empty when
    not tracing or outside any sampled span."""
    if not active():
        return {}
    from opentelemetry import propagate

    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


def traceparent() -> str | None:
    """The current context's W3C ``traceparent``, for the job's record."""
    return carrier().get("traceparent")
