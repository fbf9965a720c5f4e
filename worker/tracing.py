"""OpenTelemetry tracing: one trace per job, off by default.

Switched on by the standard variables — ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``,
``jsonl_file`` or any installed exporter's name) or ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` — and off again with ``OTEL_SDK_DISABLED=true``.
The packages are the ``tracing`` extra (``pip install 'headswap-worker[tracing]'``);
without them every function here is a no-op (one INFO line says why when the variables
ask for tracing). A process whose host application already configured an SDK tracer
provider (a producer's backend) uses that one.

How one job's trace hangs together::

    headswap.producer.submit                       Producer.submit (the trace's root)
    ├─ apply_async/headswap.submit                 Celery instrumentation: the context
    │  └─ run/headswap.submit                      travels in the message headers
    │     └─ headswap.submit ─ akool.create_task ─ POST (requests instrumentation)
    ├─ headswap.poll ─ akool.task_detail ─ GET     beat's poll batches, any worker
    │  └─ headswap.notify                          (inline after a final status)
    │     └─ apply_async/headswap.deliver_callback
    │        └─ run/… ─ headswap.callback ─ POST   traceparent sent to the producer
    └─ headswap.webhook                            the receiver, on Akool's delivery

The steps that run in other tasks and processes (polls, the webhook, notify, callback
attempts) find the job's context in its record (``traceparent``, W3C format, written
when the job is created): :func:`job_span` starts them as children of it — or of the
current span, when that already belongs to the job's trace. Beat's housekeeping ticks
(``poll_due``, ``sweep``) are not traced: a tick would be a trace of its own every
``HEADSWAP_POLL_TICK_SECONDS``, and under the default parent-based sampler the batches
they send are then not traced either — the job spans inside them are, by their parent.

Attributes are ``headswap.*`` (``job_id``, ``remote_id``, ``state``, ``outcome``...);
every string value has its URLs redacted (:func:`config.settings.redact_text`), and the
HTTP spans' ``url.full`` / ``http.url`` too: no credentials or query strings in spans.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, cast

from config.settings import redact_text, redact_url

log = logging.getLogger(__name__)

#: The job record's field that holds the job's trace context.
RECORD_FIELD = "traceparent"
#: The exporter of ours: one JSON object per finished span, appended to this file.
FILE_EXPORTER = "jsonl_file"
FILE_VARIABLE = "HEADSWAP_TRACES_FILE"
#: Root spans never sampled: beat's ticks and what the instrumentation makes of them.
HOUSEKEEPING = frozenset(
    f"{action}/headswap.{task}"
    for action in ("apply_async", "run")
    for task in ("poll_due", "sweep", "wake_due")
)
#: Longer string attributes are cut (a job id from a webhook's query is anyone's text).
MAX_ATTRIBUTE_CHARS = 256
#: The variables that ask for tracing (any one of them).
_REQUESTING = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT",
               "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")  # fmt: skip
_TRUE = ("1", "true", "yes", "on")

if TYPE_CHECKING:
    from opentelemetry.context import Context

#: ``opentelemetry.trace`` and ``opentelemetry.propagate``, imported by :func:`setup` only:
#: importing them costs ~0.2 s (the propagators' entry points are looked up), which every
#: process that never traces — the CLI, a benchmark's children — would pay.
trace: Any = None
propagate: Any = None

_lock = threading.Lock()
_enabled_pid: int | None = None  # the process that set tracing up (a fork starts over)


def enabled() -> bool:
    """Whether this process traces (set up here, not inherited through a fork)."""
    return _enabled_pid is not None and _enabled_pid == os.getpid()


def requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the standard variables ask for tracing (and do not switch the SDK off)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return any(env.get(name, "").strip() for name in _REQUESTING)


def setup(service: str) -> bool:
    """Set tracing up for this process, once (a forked child sets itself up again).

    ``service`` is the default ``service.name`` (``OTEL_SERVICE_NAME`` wins). True when
    the process now traces."""
    global _enabled_pid
    with _lock:
        if enabled():
            return True
        if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
            return False
        if not requested() and "opentelemetry" not in sys.modules:
            return False  # not asked, and no host application set OpenTelemetry up
        try:
            from opentelemetry.sdk.trace import TracerProvider as SdkProvider

            _load_api()
        except ImportError:
            if requested():
                log.info("tracing is off: the OpenTelemetry packages are not installed "
                         "(pip install 'headswap-worker[tracing]')")  # fmt: skip
            return False
        if not isinstance(trace.get_tracer_provider(), SdkProvider):
            if not requested():
                return False
            if not _install_provider(service):
                return False
        _instrument()
        _enabled_pid = os.getpid()
        return True


def _load_api() -> None:
    global trace, propagate
    from opentelemetry import propagate as propagate_module
    from opentelemetry import trace as trace_module

    trace, propagate = trace_module, propagate_module


def _install_provider(service: str) -> bool:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporters = _exporters()
    if not exporters:
        return False
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    provider = TracerProvider(resource=resource)
    # The sampler OTEL_TRACES_SAMPLER chose, wrapped (it quacks like the SDK's Sampler).
    provider.sampler = cast(Any, HousekeepingSampler(provider.sampler))
    for exporter in exporters:
        # Batches leave every OTEL_BSP_SCHEDULE_DELAY ms; the rest at exit.
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("tracing on", extra={"service": resource.attributes.get(SERVICE_NAME),
                                  "exporters": [type(e).__name__ for e in exporters]})
    return True


def flush() -> None:
    """Export what is finished now: a process about to ``os._exit`` (a prefork child)
    runs no exit handlers, so the last batch would be lost."""
    if enabled():
        provider = trace.get_tracer_provider()
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is not None:
            force_flush(5000)


def _exporter_names() -> list[str]:
    names = [n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    names = [n for n in names if n and n != "none"]
    if not names:  # an OTLP endpoint alone
        names = ["otlp"]
    protocol = (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf")
    otlp = "otlp_proto_grpc" if protocol.strip().lower() == "grpc" else "otlp_proto_http"
    return [otlp if n == "otlp" else n for n in names]


def _exporters() -> list[Any]:
    """The span exporters ``OTEL_TRACES_EXPORTER`` names, as the SDK finds them (the
    ``opentelemetry_traces_exporter`` entry points); one that cannot be had is said in
    an ERROR line naming it, and left out."""
    out: list[Any] = []
    for name in _exporter_names():
        try:
            if name == FILE_EXPORTER:
                out.append(FileSpanExporter())
                continue
            found = entry_points(group="opentelemetry_traces_exporter", name=name)
            if not found:
                raise LookupError(f"no installed span exporter is called {name!r}")
            out.append(next(iter(found)).load()())
        except Exception as exc:
            log.error("span exporter not available; left out", extra={
                "exporter": name, "variable": "OTEL_TRACES_EXPORTER",
                "error": redact_text(str(exc))})  # fmt: skip
    return out


def _instrument() -> None:
    """Celery (publish/run spans, context in message headers) and requests (HTTP client
    spans, ``traceparent`` on every request), unless ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
    names them."""
    disabled = {n.strip() for n in
                os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")}
    try:
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.requests import RequestsInstrumentor
    except ImportError:
        log.info("tracing without the Celery/requests instrumentation: not installed")
        return
    celery = CeleryInstrumentor()  # type: ignore[no-untyped-call]
    if "celery" not in disabled and not celery.is_instrumented_by_opentelemetry:
        celery.instrument()
    http = RequestsInstrumentor()
    if "requests" not in disabled and not http.is_instrumented_by_opentelemetry:
        http.instrument(request_hook=_redact_http_span)


def _redact_http_span(span: Any, request: Any) -> None:
    """The requests instrumentation keeps the query string (a callback URL's token, a
    presigned signature): the URL attributes get the project's redaction."""
    attributes = getattr(span, "attributes", None) or {}
    for key in ("url.full", "http.url"):
        if key in attributes:
            span.set_attribute(key, redact_url(str(attributes[key])))


# --- spans ----------------------------------------------------------------------------
def _attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        name = key if "." in key else f"headswap.{key}"
        if not isinstance(value, bool | int | float):
            value = redact_text(str(value))[:MAX_ATTRIBUTE_CHARS]
        out[name] = value
    return out


def set_attributes(span: Any, **values: Any) -> None:
    """Attributes on a span from :func:`span`/:func:`job_span` (None: not tracing)."""
    if span is not None and span.is_recording():
        span.set_attributes(_attributes(values))


def annotate(**values: Any) -> None:
    """Attributes on the current span (a step's span, from deep inside it)."""
    if enabled():
        set_attributes(trace.get_current_span(), **values)


@contextlib.contextmanager
def span(name: str, kind: str = "INTERNAL", **values: Any) -> Iterator[Any]:
    """A child of the current span, current while the block runs; None when off."""
    if not enabled():
        yield None
        return
    with _started(name, None, kind, values) as current:
        yield current


@contextlib.contextmanager
def job_span(name: str, traceparent: str | None, kind: str = "INTERNAL",
             **values: Any) -> Iterator[Any]:  # fmt: skip
    """A step of a job: a child of the job's stored context (``traceparent`` of its
    record) — or of the current span when that is in the job's trace already (notify
    inside a poll); without a stored context, of the current span. None when off."""
    if not enabled():
        yield None
        return
    with _started(name, _job_parent(traceparent), kind, values) as current:
        yield current


@contextlib.contextmanager
def _started(name: str, parent: Context | None, kind: str,
             values: Mapping[str, Any]) -> Iterator[Any]:  # fmt: skip
    """The span, current while the block runs. An exception marks it ERROR with its class
    and its redacted message (the SDK's own recording would keep the message and the
    traceback whole, URLs and all)."""
    tracer = trace.get_tracer("headswap")
    with tracer.start_as_current_span(
        name, context=parent, kind=getattr(trace.SpanKind, kind),
        attributes=_attributes(values), record_exception=False,
        set_status_on_exception=False,
    ) as current:  # fmt: skip
        try:
            yield current
        except BaseException as exc:
            if current.is_recording():
                current.set_attribute("error.type", type(exc).__qualname__)
                current.set_status(trace.Status(trace.StatusCode.ERROR,
                                                redact_text(str(exc))[:300]))  # fmt: skip
            raise


def _job_parent(traceparent: str | None) -> Context | None:
    if not traceparent:
        # No stored context (a job from before tracing, or from a producer that does
        # not trace): under the current span if that is traced, else a trace of its own.
        if trace.get_current_span().get_span_context().trace_flags.sampled:
            return None
        from opentelemetry.context import Context

        return Context()
    stored: Context = propagate.extract({"traceparent": traceparent})
    stored_trace = trace.get_current_span(stored).get_span_context()
    if not stored_trace.is_valid:
        return None
    here = trace.get_current_span().get_span_context()
    if here.is_valid and here.trace_id == stored_trace.trace_id:
        return None  # the current span is part of the job's trace: nest under it
    return stored


def traceparent() -> str | None:
    """The current span's context, W3C ``traceparent``: what a job record keeps."""
    if not enabled():
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def inject(headers: dict[str, str]) -> None:
    """Put the current context in outgoing HTTP headers (``traceparent``...)."""
    if enabled():
        propagate.inject(headers)


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits (for log lines), or None."""
    if not enabled():
        return None
    context = trace.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None


# --- sampling ---------------------------------------------------------------------------
def _sampling() -> Any:
    from opentelemetry.sdk.trace import sampling

    return sampling


class HousekeepingSampler:
    """The configured sampler (``OTEL_TRACES_SAMPLER``), except that a root span of beat's
    housekeeping (:data:`HOUSEKEEPING`) is dropped."""

    def __init__(self, delegate: Any) -> None:
        self.delegate = delegate

    def should_sample(self, parent_context: Any, trace_id: int, name: str, kind: Any = None,
                      attributes: Any = None, links: Sequence[Any] | None = None,
                      trace_state: Any = None) -> Any:  # fmt: skip
        if name in HOUSEKEEPING:
            parent = trace.get_current_span(parent_context).get_span_context()
            if not parent.is_valid:
                sampling = _sampling()
                return sampling.SamplingResult(sampling.Decision.DROP)
        return self.delegate.should_sample(parent_context, trace_id, name, kind, attributes,
                                           links, trace_state)  # fmt: skip

    def get_description(self) -> str:
        return f"HousekeepingSampler{{{self.delegate.get_description()}}}"


# --- the file exporter ------------------------------------------------------------------
class FileSpanExporter:
    """``OTEL_TRACES_EXPORTER=jsonl_file``: each finished span as one JSON line appended
    to ``HEADSWAP_TRACES_FILE`` (one ``write`` per batch, so processes may share a file).
    For local runs and tests; use OTLP in production."""

    def __init__(self, path: str | None = None) -> None:
        path = path or os.environ.get(FILE_VARIABLE, "")
        if not path:
            raise ValueError(f"{FILE_VARIABLE} must name the file the spans go to")
        self.path = path

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        lines = "".join(json.dumps(span_record(s), separators=(",", ":")) + "\n" for s in spans)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, lines.encode())
        finally:
            os.close(fd)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def span_record(span: Any) -> dict[str, Any]:
    """A finished span as plain JSON (ids in hex, as tracing UIs show them)."""
    context = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
        "kind": span.kind.name,
        "service": span.resource.attributes.get("service.name"),
        "start": span.start_time,
        "end": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
    }
