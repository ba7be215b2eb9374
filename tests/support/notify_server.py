"""A tiny local HTTP server standing in for the Functions host's HTTP front for one route:
it turns each request into an `azure.functions.HttpRequest` and calls the real
`graph_notifications` function with it, as the host does (the host's key check is
the host's: the `code` query parameter is passed through, as the host passes it).

    with notify_server() as server:
        server.url  # http://127.0.0.1:<port>/api/graph/notifications
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func

from shared.notify import settings as notify_settings
from tests.e2e.test_http import function

FUNCTION = function("graph_notifications")


@dataclasses.dataclass
class NotifyServer:
    base: str
    calls: list[tuple[str, int]]
    """(kind: "validation" or "notification", status) per request, in order."""

    @property
    def url(self) -> str:
        return f"{self.base}/api/{notify_settings.ROUTE}"


def _handler(calls: list[tuple[str, int]]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            params = dict(parse_qsl(parts.query, keep_blank_values=True))
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            request = func.HttpRequest(method="POST", url=self.path, body=body,
                                       headers=dict(self.headers.items()), params=params)
            response: Any = asyncio.run(FUNCTION(request))
            calls.append(("validation" if "validationToken" in params else "notification",
                          response.status_code))
            payload = response.get_body() or b""
            self.send_response(response.status_code)
            self.send_header("content-type", response.mimetype or "text/plain")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@contextmanager
def notify_server() -> Iterator[NotifyServer]:
    calls: list[tuple[str, int]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(calls))
    thread = threading.Thread(target=server.serve_forever, name="notify-server", daemon=True)
    thread.start()
    try:
        yield NotifyServer(f"http://127.0.0.1:{server.server_address[1]}", calls)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
