"""Run the Graph simulator in a background thread for tests.

    with running_simulator(tenant) as sim:
        httpx.get(f"{sim.url}/users", headers=sim.headers)
        sim.put_tenant(changed)
"""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from aiohttp import web

from graph_simulator import SIMULATOR_KEY, Simulator, create_app
from shared.config import SIMULATOR_TOKEN


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS context, made once: loading the CA bundle for every client
    costs tens of milliseconds of CPU, and every test starts a simulator."""
    return httpx.create_ssl_context()


class RunningSimulator:
    """A simulator served on a free loopback port; control helpers over real HTTP."""

    token = SIMULATOR_TOKEN

    def __init__(self, app: web.Application, port: int) -> None:
        self.app = app
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/v1.0"
        self.headers = {"Authorization": f"Bearer {SIMULATOR_TOKEN}"}
        self._http = httpx.Client(base_url=self.base, timeout=30, verify=_tls_context())

    @property
    def http(self) -> httpx.Client:
        """A plain client (no token) with `base` as base URL; absolute URLs work too."""
        return self._http

    @property
    def simulator(self) -> Simulator:
        """The in-process state (read-only use from tests; it lives on another thread)."""
        return self.app[SIMULATOR_KEY]

    def _ok(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise AssertionError(
                f"{response.request.method} {response.request.url}: "
                f"{response.status_code} {response.text}"
            )
        return response.json() if response.content else None

    def graph(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A Graph request with the bearer token; `path` relative to /v1.0, or an absolute URL
        (e.g. an `@odata.nextLink`)."""
        url = path if path.startswith(("http://", "https://")) else f"/v1.0{path}"
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self._http.request(method, url, headers=headers, **kwargs)

    def put_tenant(self, tenant: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._ok(self._http.put("/_sim/tenant", json=tenant))
        return result

    def requests(self) -> dict[str, Any]:
        result: dict[str, Any] = self._ok(self._http.get("/_sim/requests"))
        return result

    def reset_requests(self) -> None:
        self._ok(self._http.delete("/_sim/requests"))

    def tenant(self) -> dict[str, Any]:
        """The current tenant as a tenant file (edit it and `put_tenant` it back)."""
        result: dict[str, Any] = self._ok(self._http.get("/_sim/tenant"))
        return result

    def set_faults(
        self,
        path: str | dict[str, Any] | list[dict[str, Any]],
        status: int = 503,
        *,
        method: str = "GET",
        times: int = 1,
        retry_after: int | None = None,
    ) -> None:
        """Add a fault: `set_faults("/groups/delta", 429, times=2, retry_after=1)`, or pass
        the raw `POST /_sim/faults` body (one fault object or a list of them)."""
        if not isinstance(path, str):
            self._ok(self._http.post("/_sim/faults", json=path))
            return
        fault: dict[str, Any] = {"method": method, "path": path, "status": status,
                                 "times": times}
        if retry_after is not None:
            fault["retryAfter"] = retry_after
        self._ok(self._http.post("/_sim/faults", json=fault))

    def clear_faults(self) -> None:
        self._ok(self._http.delete("/_sim/faults"))

    def expire_delta_tokens(self) -> None:
        self._ok(self._http.post("/_sim/expire-delta-tokens"))

    def set_latency(self, ms: float) -> None:
        self._ok(self._http.put("/_sim/latency", json={"ms": ms}))

    def hold_answers(self, method: str, path: str, ms: float) -> None:
        """Requests that run `method path` (a route template) are done, answered `ms` later."""
        self._ok(self._http.put("/_sim/hold", json={"method": method, "path": path, "ms": ms}))

    def set_quirks(self, **settings: Any) -> dict[str, Any]:
        """`PUT /_sim/quirks` (deltaLagSeconds, emptyFirstPages, writeQuota)."""
        result: dict[str, Any] = self._ok(self._http.put("/_sim/quirks", json=settings))
        return result

    def set_user_quirks(self, user: str, **quirks: Any) -> dict[str, Any]:
        """`PUT /_sim/users/{user}/quirks` (mailbox, photo, privileged, loopingCalendars)."""
        result: dict[str, Any] = self._ok(
            self._http.put(f"/_sim/users/{user}/quirks", json=quirks))
        return result

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = self._ok(self._http.get("/_sim/state"))
        return result

    def close(self) -> None:
        self._http.close()


@contextmanager
def serving(app: web.Application, name: str = "graph-simulator") -> Iterator[int]:
    """Serve `app` on 127.0.0.1:<free port> in its own thread and event loop; the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    # A request the test held (`hold_answers`) may still be waiting: do not wait for it.
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    started = threading.Event()
    failure: list[BaseException] = []

    async def start() -> None:
        await runner.setup()
        await web.SockSite(runner, sock).start()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except BaseException as err:  # reported to the caller below
            failure.append(err)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        left = asyncio.all_tasks(loop)  # a held answer outlives the shutdown timeout
        for task in left:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=run, name=f"{name}-{port}", daemon=True)
    thread.start()
    started.wait(10)
    if failure:
        sock.close()
        raise failure[0]
    try:
        yield port
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        sock.close()


@contextmanager
def running_simulator(
    tenant: dict[str, Any], latency_ms: float = 0
) -> Iterator[RunningSimulator]:
    """Start the simulator on 127.0.0.1:<free port> in its own thread and event loop."""
    app = create_app(tenant, latency_ms=latency_ms)
    with serving(app) as port:
        sim = RunningSimulator(app, port)
        try:
            yield sim
        finally:
            sim.close()
