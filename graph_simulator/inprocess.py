"""The simulator behind httpx's transport seam: Graph answered in-process, no socket.

httpx lets a client take any `AsyncBaseTransport` (its `MockTransport` is the model):
`InProcessTransport(simulator)` turns each request into the simulator's `Req`, answers it
with the very code the socket server runs (`transport.answer`: handlers, latency,
per-mailbox limits) and gives back an `httpx.Response`. The msgraph-sdk pipeline above it
is the real one (auth header, retry and redirect middleware, `$batch`), so tests of the
run drive Graph as they would over a socket, in a fraction of the time. Control routes
(`/_sim/...`) are not served here: such a test holds the `Simulator` itself.
"""

from __future__ import annotations

import json

import httpx

from graph_simulator.protocol import GRAPH_PREFIX, Req, Resp, bad_request
from graph_simulator.state import Simulator
from graph_simulator.transport import answer


class InProcessTransport(httpx.AsyncBaseTransport):
    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        raw = await request.aread()
        path = request.url.path
        if not path.startswith(GRAPH_PREFIX):
            return _response(Resp(404, {"error": {"code": "NotFound",
                                                  "message": "not a Graph route"}}))
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            return _response(bad_request("Unable to read JSON request payload.",
                                         "BadRequest").response())
        req = Req(method=request.method.upper(), path=path[len(GRAPH_PREFIX):] or "/",
                  query=dict(request.url.params),  # a repeated key: the last wins
                  headers={k.lower(): v for k, v in request.headers.items()}, body=body,
                  origin=f"{request.url.scheme}://{request.url.netloc.decode()}")
        return _response(await answer(self.simulator, req))


def _response(resp: Resp) -> httpx.Response:
    if resp.body is None:
        return httpx.Response(resp.status, headers=resp.headers)
    if isinstance(resp.body, bytes):
        content, content_type = resp.body, resp.content_type
    else:
        content, content_type = json.dumps(resp.body).encode(), "application/json"
    return httpx.Response(resp.status, content=content,
                          headers={"content-type": content_type, **resp.headers})
