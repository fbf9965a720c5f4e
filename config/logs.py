"""Logging: one JSON object per line (``HEADSWAP_LOG_FORMAT=json``) or plain text.

A JSON line holds ``time`` (RFC 3339, UTC, milliseconds: ``2026-01-02T03:04:05.678Z``),
``ts`` (the same instant in unix seconds), ``level``, ``logger``, ``msg`` and, where known:

- ``task_id``, ``task_name``: the Celery task the line was logged in (Celery's current
  task, so Celery's own lines and every library's count too; a thread working for a task,
  a poll batch's detail calls, names it through :func:`working_for`);
- ``hostname``: in a worker its Celery node name (``w1@pod-7f9c``, what Flower and
  ``celery inspect`` show); in every other process the machine's (the pod's) name;
- ``trace_id``, ``span_id``: the current OpenTelemetry span, when a span is recording
  (nothing is imported for it: a process that runs no tracing has no span);
- every field passed with ``extra=`` (``job_id``, ``remote_id``, ``state``...) that is
  not None.

The formatter masks every configured secret value wherever it appears in the finished
line, as a last line of defence behind the rule that secrets are never logged at all, and
redacts every URL in it (:func:`config.settings.redact_text`: userinfo and query string),
whoever logged it: Celery's own lines repeat task arguments (a failure's ``args``, for
one), and a producer's job URLs may hold credentials or presigned signatures.

``HEADSWAP_LOG_LEVEL`` sets the root logger's level in every process: the worker and beat
(through Celery's ``setup_logging`` signal, ``worker/lifecycle.py``), the webhook receiver
(gunicorn's own lines included) and the CLI's commands.
"""

from __future__ import annotations

import contextvars
import json
import logging
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from config.settings import Settings, redact_text

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()) | {
    "message",
    "asctime",
    "taskName",
}

#: What ``hostname`` says outside a Celery task; a worker sets its node name (:func:`set_hostname`).
_process: dict[str, str] = {"hostname": socket.gethostname()}


def set_hostname(name: str | None) -> None:
    """The ``hostname`` of this process's lines (a worker's Celery node name)."""
    if name:
        _process["hostname"] = name


def rfc3339(created: float) -> str:
    """``created`` (unix seconds) as RFC 3339 in UTC with milliseconds and ``Z``
    (truncated, like ``ts``: both name the same millisecond)."""
    ms = int(created * 1000)
    stamp = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: The task fields of the task a helper thread works for (Celery's current task is
#: per thread: a pool thread has none of its own).
_working_for: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "headswap_task_fields", default=None)


def working_for() -> Callable[[], contextvars.Context]:
    """In a task's thread: a maker of contexts for the helper threads that do part of its
    work. Each context (one per piece of work: a context runs in one thread at a time)
    carries this thread's context variables — the current OpenTelemetry span among them —
    and names this task in the helper's log lines."""
    fields = task_fields()

    def context() -> contextvars.Context:
        ctx = contextvars.copy_context()
        ctx.run(_working_for.set, fields)
        return ctx

    return context


def task_fields() -> dict[str, str]:
    """``task_id``, ``task_name`` and ``hostname`` of the Celery task running in this
    thread, or of the task this thread works for (:func:`working_for`); none outside a
    task, or where Celery is not loaded."""
    state = sys.modules.get("celery._state")
    task = state.get_current_task() if state is not None else None
    if task is None:
        return dict(_working_for.get() or {})
    request = task.request
    out = {"task_id": getattr(request, "id", None), "task_name": getattr(task, "name", None),
           "hostname": getattr(request, "hostname", None)}
    return {key: value for key, value in out.items() if isinstance(value, str) and value}


def trace_fields() -> dict[str, str]:
    """``trace_id``/``span_id`` (hex, as tracing backends show them) of the recording
    OpenTelemetry span, if any. Looks only at an ``opentelemetry`` the process already
    imported: without tracing there is nothing to find, and nothing is loaded to look."""
    otel = sys.modules.get("opentelemetry.trace")
    if otel is None:
        return {}
    span = otel.get_current_span()
    if not span.is_recording():
        return {}
    context = span.get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": format(context.trace_id, "032x"),
            "span_id": format(context.span_id, "016x")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": rfc3339(record.created),
            "ts": int(record.created * 1000) / 1000,
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            **_process,
            **task_fields(),
            **trace_fields(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and value is not None:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``<RFC 3339 time> LEVEL logger: message``, with the task in brackets when known."""

    def format(self, record: logging.LogRecord) -> str:
        task = task_fields()
        where = f" [{task['task_name']}:{task['task_id']}]" if "task_id" in task else ""
        line = f"{rfc3339(record.created)} {record.levelname} {record.name}{where}: " \
               f"{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class RedactingFormatter(logging.Formatter):
    """Wraps a formatter; masks every secret value anywhere in the finished line (message,
    ``extra`` fields such as Celery's task kwargs, tracebacks), then redacts its URLs."""

    def __init__(self, inner: logging.Formatter, secrets: list[str]) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = sorted((s for s in secrets if len(s) >= 6), key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        text = self.inner.format(record)
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return redact_text(text)


def secret_values(settings: Settings) -> list[str]:
    values = [
        v.get()
        for v in (settings.akool_api_key, settings.akool_client_secret,
                  *settings.callback_secrets)
    ]
    if "@" in settings.redis_url and ":" in settings.redis_url.split("@")[0].split("//")[-1]:
        values.append(settings.redis_url.split("@")[0].split("//")[-1].split(":", 1)[1])
    return [v for v in values if v]


def setup_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    inner: logging.Formatter = (
        JsonFormatter() if settings.log_format == "json" else TextFormatter()
    )
    handler.setFormatter(RedactingFormatter(inner, secret_values(settings)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for noisy in ("urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
