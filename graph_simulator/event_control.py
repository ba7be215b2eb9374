"""Control routes of the simulator's event extras (`graph_simulator.event_extras`): the
messages event writes sent (`GET`/`DELETE /_sim/mail`) and how long a `transactionId` is
remembered (`PUT /_sim/transaction-window`, `{"seconds": n}`). No token, not counted,
like the other `/_sim/...` routes.
"""

from __future__ import annotations

from aiohttp import web

from graph_simulator.event_extras import extras
from graph_simulator.transport import SIMULATOR_KEY, read_json


async def get_mail(request: web.Request) -> web.StreamResponse:
    return web.json_response({"mail": extras(request.app[SIMULATOR_KEY]).mail})


async def delete_mail(request: web.Request) -> web.StreamResponse:
    extras(request.app[SIMULATOR_KEY]).mail.clear()
    return web.Response(status=204)


async def put_transaction_window(request: web.Request) -> web.StreamResponse:
    body, ok = await read_json(request)
    seconds = body.get("seconds") if ok and isinstance(body, dict) else None
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
        return web.json_response({"error": {
            "code": "invalidRequest",
            "message": "transactionWindow.seconds: required, a non-negative number"}},
            status=400)
    extras(request.app[SIMULATOR_KEY]).window = float(seconds)
    return web.json_response({"seconds": float(seconds)})


def add_event_control_routes(app: web.Application) -> None:
    app.router.add_get("/_sim/mail", get_mail)
    app.router.add_delete("/_sim/mail", delete_mail)
    app.router.add_put("/_sim/transaction-window", put_transaction_window)

