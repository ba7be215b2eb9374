"""The aiohttp edge: web requests in as `Req`, `Resp` out as web responses.

Handlers never touch aiohttp; this is the only place that does for Graph routes.
Every Graph response echoes `client-request-id` (or a fresh id) as both
`request-id` and `client-request-id`, as Graph does. Configured latency is
slept here, before the request is processed, so it applies to every Graph
request (a `$batch` once, not per item) and never to `/_sim` control calls.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from typing import Any

from aiohttp import web

from graph_simulator import batch, mailbox_limit, subscriptions
from graph_simulator.protocol import GRAPH_PREFIX, Req, Resp, bad_request
from graph_simulator.state import Simulator

SIMULATOR_KEY = web.AppKey("simulator", Simulator)


def to_web(resp: Resp, request_id: str) -> web.Response:
    headers = {"request-id": request_id, "client-request-id": request_id, **resp.headers}
    if resp.body is None:
        return web.Response(status=resp.status, headers=headers)
    if isinstance(resp.body, bytes):
        return web.Response(status=resp.status, body=resp.body, headers=headers,
                            content_type=resp.content_type)
    text = json.dumps(resp.body, separators=(",", ":"))
    return web.Response(status=resp.status, text=text, headers=headers,
                        content_type="application/json")


async def read_json(request: web.Request) -> tuple[Any, bool]:
    """(parsed body or None, ok); an empty body is ok and None."""
    raw = await request.read()
    if not raw.strip():
        return None, True
    try:
        return json.loads(raw), True
    except ValueError:
        return None, False


async def graph_handler(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR_KEY]
    request_id = request.headers.get("client-request-id") or str(uuid.uuid4())
    body, ok = await read_json(request)
    if not ok:
        err = bad_request("Unable to read JSON request payload.", "BadRequest")
        return to_web(err.response(), request_id)
    req = Req(
        method=request.method.upper(),
        path=request.path[len(GRAPH_PREFIX):] or "/",
        query={k: v for k, v in request.query.items()},  # a repeated key: the last wins
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        origin=f"{request.scheme}://{request.host}",
    )
    return to_web(await answer(sim, req), request_id)


async def answer(sim: Simulator, req: Req) -> Resp:
    """`req` answered as Graph would, with the configured latency and Outlook's
    in-flight count per mailbox: what every transport (a socket or in-process) serves."""
    # In flight from arrival to answer: Outlook's per-mailbox limit counts these.
    items = (batch.sub_requests(req, mailbox_limit.batch_items(req.body))
             if req.path.rstrip("/") == "/$batch" else [req])
    busy = Counter(mailbox_limit.mailboxes_of(sim, items))
    sim.inflight.update(busy)
    try:
        if sim.latency_ms > 0:
            await asyncio.sleep(sim.latency_ms / 1000)
        resp = sim.process(req)
        if sim.pending_event_changes:  # Graph's notifications of the events it wrote
            changes, sim.pending_event_changes = sim.pending_event_changes, []
            await subscriptions.deliver_events(sim, changes)
        held, sim.hold_now = sim.hold_now, 0.0
        if held > 0:  # done, but answered late (PUT /_sim/hold)
            await asyncio.sleep(held)
        return resp
    finally:
        sim.inflight.subtract(busy)
        for mailbox in busy:
            if sim.inflight[mailbox] <= 0:
                del sim.inflight[mailbox]
