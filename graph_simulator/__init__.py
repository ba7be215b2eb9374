"""A Microsoft Graph v1.0 simulator serving a tenant file on loopback.

`create_app(tenant)` builds the aiohttp application; `serve(path)` runs it
until SIGTERM/SIGINT and prints `Graph simulator listening on <url>` once bound
(also `python -m graph_simulator --tenant FILE [--port P] [--latency-ms L]`).

Graph routes (under /v1.0, bearer token `shared.config.SIMULATOR_TOKEN`):
`/organization`; `/users`, `/users/{id or UPN}`, `/users/delta`, `/users/{id}/memberOf`,
`/users/{id}/transitiveMemberOf`; `/groups`, `/groups/{id}`, `/groups/delta`,
`/groups/{id}/members`, `/groups/{id}/transitiveMembers`, `POST /groups/{id}/members/$ref`,
`DELETE /groups/{id}/members/{mid}/$ref`; `POST /users`, `PATCH /users/{id}`,
`DELETE /users/{id}` (to `/directory/deletedItems/{id}`, restorable with
`POST /directory/deletedItems/{id}/restore`; list `/directory/deletedItems/microsoft.graph.user`);
`/users/{id}/photo` and `/photo/$value`; `/users/{id}/calendars`, `/calendar`,
`/calendars/{cid}`, `.../calendarView`, `.../events` (GET with `$filter` and `$expand` on
single-value extended properties, POST with them and `transactionId`: remembered for a
short window only, as Graph promises no more), `/users/{id}/events/{eid}` (GET, PATCH,
DELETE) and `.../cancel` (`graph_simulator.event_writes`, `event_query`);
`POST /$batch` (max 20).
Query options: `$select` (id always; users default to Graph's default property set),
`$top` (1..999), `$filter` (`p eq 'v'`, `startswith(p,'v')`, `and`/`or`), `$count=true`,
`Prefer: odata.maxpagesize=N` on delta, `$deltatoken=latest`. Subscriptions (change
notifications, `graph_simulator.subscriptions`): `POST`/`GET /subscriptions`, `GET`/`PATCH`/
`DELETE /subscriptions/{id}`, `POST /subscriptions/{id}/reauthorize`; `POST` validates the
(loopback) notification URL with Graph's handshake first.

Delta semantics: every tenant change (PUT /_sim/tenant or a write) makes a new
version; a deltaLink remembers its version and the next round reports exactly the
difference to the current version. Removed users: `@removed: {reason: changed}`;
removed groups and removed members: `{reason: deleted}`. `members@delta` is left out
when a group has no membership change (and when `$select` omits `members`). A page holds
at most `delta.GROUP_MEMBERS_PER_PAGE` member entries: a group with more comes again on
the next pages with the next part of them (Graph's paging of a large group's members).

Control endpoints (no token, not counted):
`PUT /_sim/tenant` (tenant file; 400 naming the field), `GET /_sim/tenant`,
`GET /_sim/state`, `GET /_sim/requests[?log=1]` → `{total, faulted, byEndpoint}`,
`DELETE /_sim/requests`, `POST /_sim/faults` (`{method, path, status, times, retryAfter}`
or a list; path = route template, exact path, or `*`), `GET`/`DELETE /_sim/faults`,
`POST /_sim/expire-delta-tokens`, `PUT /_sim/latency` (`{"ms": n}`), `PUT /_sim/hold`
(`{method, path, ms}`: a request running that route, alone or in a `$batch`, is done at
once and answered `ms` later: a client killed before it reads the answer),
`POST /_sim/subscriptions/{id}/lifecycle` (`{"event": …}`), `GET /_sim/deliveries`,
`GET`/`PUT`/`DELETE /_sim/quirks` and `PUT /_sim/users/{id}/quirks`: Graph's documented
habits, each switched on per user or for every request (`graph_simulator.quirks`:
mailboxes refused by an access policy or unknown to Exchange, a mailbox answering 503,
photo metadata with an empty mediaEtag, privileged users, a calendar paging forever,
empty first pages, delta lagging notifications, the directory write quota). Always on:
calendars carry `owner` (the user, or the sharer a tenant file names), POST and PATCH
refuse a userPrincipalName Graph would refuse.
`PUT /_sim/tenant` delivers the change notifications to subscribed URLs before it answers.
`GET`/`DELETE /_sim/mail` (the invitations, updates and cancellations event writes sent
attendees), `PUT /_sim/transaction-window` (`{"seconds": n}`: how long a `transactionId`
is remembered; `graph_simulator.event_control`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
from typing import Any

from aiohttp import web

from graph_simulator.server import SIMULATOR_KEY, Simulator, create_app
from graph_simulator.tenant import Snapshot, TenantFileError, build_snapshot

__all__ = [
    "SIMULATOR_KEY",
    "Simulator",
    "Snapshot",
    "TenantFileError",
    "build_snapshot",
    "create_app",
    "load_tenant_file",
    "serve",
]


def load_tenant_file(tenant_path: str) -> dict[str, Any]:
    """Read and validate a tenant file; TenantFileError names the file and the bad field."""
    try:
        with open(tenant_path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as err:
        raise TenantFileError(f"{tenant_path}: cannot read tenant file: {err}") from None
    except ValueError as err:
        raise TenantFileError(f"{tenant_path}: not valid JSON: {err}") from None
    try:
        build_snapshot(data)
    except TenantFileError as err:
        raise TenantFileError(f"{tenant_path}: {err}") from None
    assert isinstance(data, dict)
    return data


async def _serve(tenant: dict[str, Any], host: str, port: int, latency_ms: float) -> None:
    app = create_app(tenant, latency_ms=latency_ms)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
        site = web.SockSite(runner, sock)
        await site.start()
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        print(f"Graph simulator listening on http://{shown}:{bound}/v1.0", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()
        sock.close()


def serve(
    tenant_path: str, *, host: str = "127.0.0.1", port: int = 0, latency_ms: float = 0
) -> None:
    """Serve the tenant file as Graph v1.0 until SIGTERM/SIGINT (blocking).

    Validates the file first (TenantFileError names the bad field), binds, then
    prints exactly one line `Graph simulator listening on http://HOST:PORT/v1.0`.
    """
    tenant = load_tenant_file(tenant_path)
    asyncio.run(_serve(tenant, host, port, latency_ms))
    sys.stdout.flush()
