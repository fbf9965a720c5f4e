"""Logging: one JSON object per line (``HEADSWAP_LOG_FORMAT=json``) or plain text.

Fields passed with ``extra=`` (``job_id``, ``remote_id``, ``state``...) become JSON keys.
The formatter masks every configured secret value wherever it appears in the finished
line, as a last line of defence behind the rule that secrets are never logged at all, and
redacts every URL in it (:func:`config.settings.redact_text`: userinfo and query string),
whoever logged it: Celery's own lines repeat task arguments (a failure's ``args``, for
one), and a producer's job URLs may hold credentials or presigned signatures.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from config.settings import Settings, redact_text

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


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
        JsonFormatter()
        if settings.log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.setFormatter(RedactingFormatter(inner, secret_values(settings)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for noisy in ("urllib3", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
