"""An HTTP callback receiver for tests: Werkzeug in a thread of the test process, recording
every POST byte for byte, answering each path by a script of statuses."""

from __future__ import annotations

import threading
import time


class Receiver:
    """Records raw POSTs per path; ``script(path, [500, 500])`` sets the answers of a path
    (one per request, then 200)."""

    def __init__(self) -> None:
        from werkzeug.serving import WSGIRequestHandler, make_server
        from werkzeug.wrappers import Request, Response

        class Quiet(WSGIRequestHandler):
            def log_request(self, *args: object) -> None:
                pass

        self.lock = threading.Lock()
        self.scripts: dict[str, list[int]] = {}
        self.requests: list[dict] = []

        def app(environ, start_response):
            request = Request(environ)
            body = request.get_data()
            with self.lock:
                script = self.scripts.get(request.path, [])
                status = script.pop(0) if script else 200
                self.requests.append({"path": request.path, "method": request.method,
                                      "headers": dict(request.headers), "body": body,
                                      "status": status, "at": time.monotonic()})
            return Response("ok", status=status)(environ, start_response)

        self.server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, name: str, statuses: list[int] | None = None) -> str:
        path = f"/cb/{name}"
        with self.lock:
            self.scripts[path] = list(statuses or [])
        return self.base + path

    def got(self, name: str) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["path"] == f"/cb/{name}"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
