"""Result codes and messages of the emulated API, fixed in one table (unknown #3)."""

from __future__ import annotations

from typing import Final

OK: Final = 1000
BAD_PARAM: Final = 1003
TOO_FREQUENT: Final = 1005
NOT_FOUND: Final = 1014
VIDEO_PROCESSING_ERROR: Final = 1015
SWAP_ERROR: Final = 1016
AUTH_INVALID: Final = 1101
AUTH_MISSING: Final = 1102
NO_CREDITS: Final = 1104
DURATION_EXCEEDED: Final = 1204

MESSAGES: Final[dict[int, str]] = {
    OK: "OK",
    BAD_PARAM: "Invalid parameter",
    TOO_FREQUENT: "Frequent operation",
    NOT_FOUND: "Resource not found",
    VIDEO_PROCESSING_ERROR: "Video processing error",
    SWAP_ERROR: "Head swap generation failed",
    AUTH_INVALID: "Invalid authorization or token expired",
    AUTH_MISSING: "Authorization is missing",
    NO_CREDITS: "Insufficient credit balance",
    DURATION_EXCEEDED: "Video duration must be between 3 and 20 seconds",
}

MSG_ANALYZE_OK: Final = "Analyze success"
MSG_TOO_MANY_MAPPINGS: Final = "Up to 5 characters can be replaced at one time."
MSG_MODEL_NOT_ALLOWED: Final = "Your current account does not support this feature."
MSG_BAD_CREDENTIALS: Final = "Invalid clientId or clientSecret"


class Rejection(Exception):
    """A business error: answered HTTP 200 with ``{"code": code, "msg": msg}`` and no data."""

    def __init__(self, code: int, msg: str | None = None) -> None:
        self.code = code
        self.msg = msg if msg is not None else MESSAGES.get(code, "Error")
        super().__init__(f"{code}: {self.msg}")

    def envelope(self) -> dict[str, object]:
        """The response body for this rejection (``data`` is left out, unknown #2)."""
        return {"code": self.code, "msg": self.msg}


def bad_param(msg: str) -> Rejection:
    """A 1003 rejection with a specific message."""
    return Rejection(BAD_PARAM, msg)
