"""The sandbox's WSGI application (plain Werkzeug, no framework).

API routes (``/api/open/...``) go through :meth:`Engine.admit` for counting and fault
injection, then to the engine. Control routes (``/_sandbox/...``) are unauthenticated and
never faulted. Unknown routes answer a plain 404, wrong methods 405.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from worker.sandbox import outputs
from worker.sandbox.engine import Engine, Envelope
from worker.sandbox.faults import FaultDecision
from worker.sandbox.knobs import KnobError
from worker.sandbox.media import tiny_png

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

API_PREFIX = "/api/open"
URL_MAP = Map(
    [
        Rule(f"{API_PREFIX}/v3/getToken", methods=["POST"], endpoint="token"),
        Rule(f"{API_PREFIX}/v4/headswap/analyze", methods=["POST"], endpoint="analyze"),
        Rule(
            f"{API_PREFIX}/v4/headswap/analyze/detail", methods=["GET"], endpoint="analysis_detail"
        ),
        Rule(f"{API_PREFIX}/v4/headswap/task/create", methods=["POST"], endpoint="create"),
        Rule(f"{API_PREFIX}/v4/headswap/task/detail", methods=["GET"], endpoint="task_detail"),
        Rule("/_sandbox/health", methods=["GET"], endpoint="health"),
        Rule("/_sandbox/config", methods=["GET", "POST"], endpoint="config"),
        Rule("/_sandbox/stats", methods=["GET"], endpoint="stats"),
        Rule("/_sandbox/reset", methods=["POST"], endpoint="reset"),
        Rule("/_sandbox/tokens/revoke", methods=["POST"], endpoint="revoke"),
        Rule("/_sandbox/tasks/<task_id>", methods=["GET"], endpoint="task_view"),
        Rule("/_sandbox/output/<task_id>.mp4", methods=["GET"], endpoint="output"),
        Rule(
            "/_sandbox/preview/<analysis_id>/<int:obj_id>.png", methods=["GET"], endpoint="preview"
        ),
    ]
)
API_ROUTES = frozenset({"token", "analyze", "analysis_detail", "create", "task_detail"})
MAX_BODY = 1 << 20


class SandboxRequest(Request):
    """Request with a body limit (bigger bodies get HTTP 413)."""

    max_content_length = MAX_BODY


def json_response(body: object, status: int = 200) -> Response:
    """A compact JSON response."""
    return Response(
        json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json"
    )


def seconds_text(value: float) -> str:
    """``Retry-After`` text: an integer when whole, else a short decimal."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def read_json(request: Request) -> object:
    """The JSON body, or None when it is empty or not JSON (the engine answers 1003)."""
    raw = request.get_data(cache=False)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None


def auth_headers(request: Request) -> dict[str, str]:
    """The two headers authentication looks at (case-insensitive lookup)."""
    return {name: request.headers.get(name, "") for name in ("Authorization", "x-api-key")}


class SandboxApp:
    """WSGI callable wrapping an :class:`Engine`."""

    def __init__(self, engine: Engine, sleep: Callable[[float], None] = time.sleep) -> None:
        self.engine = engine
        self._sleep = sleep
        self._control: dict[str, Callable[..., Response]] = {
            "health": self._health,
            "config": self._config,
            "stats": self._stats,
            "reset": self._reset,
            "revoke": self._revoke,
            "task_view": self._task_view,
            "output": self._output,
            "preview": self._preview,
        }

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """WSGI entry point: dispatch, turning HTTP errors and crashes into responses."""
        request = SandboxRequest(environ)
        try:
            response = self.dispatch(request)
        except HTTPException as exc:
            response = exc.get_response(environ)
        except Exception:
            log.exception("sandbox request failed: %s %s", request.method, request.path)
            response = Response("Internal Server Error", status=500, mimetype="text/plain")
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        """Route one request (raises werkzeug ``HTTPException`` for 404/405/413)."""
        endpoint, values = URL_MAP.bind_to_environ(request.environ).match()
        if endpoint in API_ROUTES:
            return self._api(str(endpoint), request)
        return self._control[str(endpoint)](request, **values)

    # -- API -------------------------------------------------------------------------------

    def _api(self, route: str, request: Request) -> Response:
        decision = self.engine.admit(route)
        if decision.latency > 0:
            self._sleep(decision.latency)
        if decision.reject_status is not None:
            return self._rejected(decision)
        body = self._execute(route, request)
        if decision.hang > 0:
            self._sleep(decision.hang)
        if decision.fail_after:
            return Response("Bad Gateway", status=502, mimetype="text/plain")
        return json_response(body)

    @staticmethod
    def _rejected(decision: FaultDecision) -> Response:
        if decision.reject_status == 429:
            return Response(
                "Too Many Requests",
                status=429,
                mimetype="text/plain",
                headers={"Retry-After": seconds_text(decision.retry_after)},
            )
        return Response("Internal Server Error", status=500, mimetype="text/plain")

    def _execute(self, route: str, request: Request) -> Envelope:
        engine = self.engine
        if route == "token":
            return engine.issue_token(read_json(request))
        headers = auth_headers(request)
        if route == "analyze":
            return engine.analyze(headers, read_json(request))
        if route == "create":
            return engine.create(headers, read_json(request))
        if route == "analysis_detail":
            return engine.analysis_detail(headers, request.args)
        return engine.task_detail(headers, request.args)

    # -- control ---------------------------------------------------------------------------

    def _health(self, request: Request) -> Response:
        return json_response({"ok": True})

    def _config(self, request: Request) -> Response:
        if request.method == "GET":
            return json_response(self.engine.config())
        changes = read_json(request)
        if not isinstance(changes, dict):
            return json_response({"error": "body must be a JSON object of knobs"}, 400)
        try:
            return json_response(self.engine.update_config(changes))
        except KnobError as exc:
            return json_response({"error": str(exc)}, 400)

    def _stats(self, request: Request) -> Response:
        return json_response(self.engine.stats())

    def _reset(self, request: Request) -> Response:
        body: Any = read_json(request) or {}
        flag = body.get("reset_config", False) if isinstance(body, dict) else None
        if not isinstance(flag, bool):
            return json_response({"error": "reset_config must be true or false"}, 400)
        return json_response({"ok": True, "config": self.engine.reset(reset_config=flag)})

    def _revoke(self, request: Request) -> Response:
        return json_response({"ok": True, "revoked": self.engine.revoke_tokens()})

    def _task_view(self, request: Request, task_id: str) -> Response:
        view = self.engine.task_view(task_id)
        if view is None:
            return json_response({"error": "no such task"}, 404)
        return json_response(view)

    def _output(self, request: Request, task_id: str) -> Response:
        """A task's finished video, real MP4 bytes (:mod:`worker.sandbox.outputs`)."""
        delivery = self.engine.output_delivery(task_id)
        if delivery.latency > 0:
            self._sleep(delivery.latency)
        if delivery.status == 404:
            return Response("Not Found", status=404, mimetype="text/plain")
        if delivery.status in (403, 410):
            return Response("Request has expired", status=delivery.status, mimetype="text/plain")
        if delivery.status != 200:
            return Response("Service Unavailable", status=delivery.status, mimetype="text/plain")
        return Response(
            outputs.body(task_id, delivery, self._sleep), mimetype="video/mp4",
            headers={"Content-Length": str(outputs.output_size(task_id, delivery.size))},
            direct_passthrough=True,
        )  # fmt: skip

    def _preview(self, request: Request, analysis_id: str, obj_id: int) -> Response:
        if not self.engine.preview_exists(analysis_id, obj_id):
            return Response("Not Found", status=404, mimetype="text/plain")
        return Response(tiny_png(40 * obj_id), mimetype="image/png")
