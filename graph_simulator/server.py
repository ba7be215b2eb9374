"""The Graph v1.0 simulator as an aiohttp application: this module only assembles it.

Where things live: `protocol` (Req, Resp, Graph errors, tokens), `pipeline`
(routing, auth, faults), `odata` (query options, paging), `state` (`Simulator`,
versions, the request pipeline), `routes` (the Graph route table) over
`directory`, `delta`, `calendars`, `writes` and `batch`; `transport` (aiohttp
edge) and `control` (`/_sim/...`). Every Graph request, `$batch` sub-requests
included, goes through `Simulator.process`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from graph_simulator.control import add_control_routes
from graph_simulator.event_control import add_event_control_routes
from graph_simulator.protocol import GRAPH_PREFIX
from graph_simulator.state import Simulator
from graph_simulator.transport import SIMULATOR_KEY, graph_handler

__all__ = ["SIMULATOR_KEY", "Simulator", "create_app"]

# A whole tenant file arrives in one `PUT /_sim/tenant`, so bodies may be very large.
MAX_REQUEST_BYTES = 1024 * 1024 * 1024


def create_app(tenant: dict[str, Any], *, latency_ms: float = 0) -> web.Application:
    """The simulator app serving `tenant` (a parsed tenant file) under /v1.0.

    Raises TenantFileError when the tenant is not valid.
    """
    app = web.Application(client_max_size=MAX_REQUEST_BYTES)
    app[SIMULATOR_KEY] = Simulator(tenant, latency_ms)
    add_control_routes(app)
    add_event_control_routes(app)
    app.router.add_route("*", GRAPH_PREFIX + "/{tail:.*}", graph_handler)
    return app
