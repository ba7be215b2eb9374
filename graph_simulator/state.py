"""`Simulator`: all state of one simulator instance, and the request pipeline over it.

The tenant is a chain of immutable `Snapshot` versions: a write never edits the
current snapshot, it installs the next one (`next_version`). Old versions stay
reachable by number, because delta and skip tokens name the version they were
issued at and must be answered against exactly that view. (Calendars and events
are the exception: they are edited in place, as they take no part in delta.)

Users that vanish from one version to the next land in `deleted_items`, as Graph's
directory recycle bin, and leave it again when a later version has them back.

Every Graph request, plain or inside `$batch`, goes through `process`: it is
counted and logged even when it then fails authentication or a fault is injected.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter, deque
from typing import Any

from graph_simulator import mailbox_limit, pipeline, quirks
from graph_simulator.calendar_delta import Round, SyncState
from graph_simulator.pipeline import Fault, Route
from graph_simulator.protocol import GraphError, Req, Resp, now
from graph_simulator.routes import GRAPH_ROUTES
from graph_simulator.tenant import JSON, Change, Snapshot, build_snapshot

REQUEST_LOG_SIZE = 1000


class Simulator:
    """All simulator state for one server instance."""

    def __init__(self, tenant: Any, latency_ms: float = 0) -> None:
        # Skip and delta tokens carry the nonce, so tokens from an earlier run are refused.
        self.nonce = secrets.token_hex(8)
        first = build_snapshot(tenant, version=1)
        self.snapshots: dict[int, Snapshot] = {1: first}
        self.current = first
        self.quirks = quirks.Quirks()
        """Graph's documented behaviours switched on by tests (`graph_simulator.quirks`)."""
        self.installed_at: dict[int, float] = {1: time.monotonic()}
        """When each version became current (what a lagging delta compares with)."""
        self.deleted_items: dict[str, JSON] = {}
        self.token_epoch = 0
        self.latency_ms = float(latency_ms)
        self.faults: list[Fault] = []
        self.held_answers: dict[tuple[str, str], float] = {}
        """(method, route template) → seconds the answer to a request that ran it (alone
        or inside a `$batch`) is held back after the work is done: a response lost on
        the way, or a client killed before it read the answer (`PUT /_sim/hold`)."""
        self.hold_now = 0.0
        """Seconds to hold the answer being made (read and reset by the transport)."""
        self.received_passwords: list[str] = []
        """Passwords of users created by POST /users, for tests only (never served)."""
        self.counts: Counter[str] = Counter()
        self.total = 0
        self.faulted = 0
        self.log: deque[JSON] = deque(maxlen=REQUEST_LOG_SIZE)
        self.delta_cache: dict[tuple[str, int | None, int, int], list[Change]] = {}
        # Graph subscriptions (graph_simulator.subscriptions): id -> subscription, and
        # the notification POSTs made (newest last).
        self.subscriptions: dict[str, JSON] = {}
        self.deliveries: deque[JSON] = deque(maxlen=REQUEST_LOG_SIZE)
        self.routes: list[Route] = [pipeline.compile_route(*spec) for spec in GRAPH_ROUTES]
        self.event_states: dict[str, SyncState] = {}
        """calendarView/delta sync states by id (what delta tokens name)."""
        self.event_rounds: dict[str, Round] = {}
        self.inflight: Counter[str] = Counter()
        """Requests in flight per mailbox (Outlook's concurrency limit)."""
        self.pending_event_changes: list[tuple[str, str, str]] = []
        """Events Graph writes changed, notified once their request is answered
        (`graph_simulator.event_notifications`)."""

    # ------------------------------------------------------------ versions

    def install(self, snap: Snapshot) -> Snapshot:
        """Make `snap` (already numbered current+1) the current version."""
        old = self.current
        deleted_at = now()
        for uid, props in old.users.items():
            if uid not in snap.users:
                self.deleted_items[uid] = {**props, "deletedDateTime": deleted_at}
        if self.deleted_items:
            for uid in [u for u in self.deleted_items if u in snap.users]:
                del self.deleted_items[uid]
        self.snapshots[snap.version] = snap
        self.installed_at[snap.version] = self.quirks.clock()
        self.current = snap
        return snap

    def replace_tenant(self, tenant: Any) -> Snapshot:
        return self.install(build_snapshot(tenant, version=self.current.version + 1))

    def next_version(self, **changes: Any) -> Snapshot:
        return self.install(self.current.evolve(self.current.version + 1, **changes))

    def expire_delta_tokens(self) -> None:
        """Make every delta token issued so far answer 410 (a forced full resync)."""
        self.token_epoch += 1
        self.delta_cache.clear()

    # ------------------------------------------------------------ requests

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, params, path_known) — path_known is True when only the method is wrong."""
        return pipeline.match(self.routes, method, path)

    def template_for(self, method: str, path: str) -> str:
        route, _, _ = self.match(method, path)
        return route.template if route else path

    def process(self, req: Req, *, authenticate: bool = True,
                concurrent: int | None = None) -> Resp:
        """Count, authenticate, inject faults, dispatch; a Graph error becomes its response.
        `authenticate` False: an item of a `$batch`. `concurrent`: requests in flight for
        the request's mailbox, itself included (default: as the transport counted them)."""
        route, params, path_known = self.match(req.method, req.path)
        template = route.template if route else None
        self.counts[f"{req.method} {template or '(unmatched)'}"] += 1
        if self.held_answers:
            self.hold_now = max(self.hold_now,
                                self.held_answers.get((req.method, template or ""), 0.0))
        self.total += 1
        try:
            resp = self._dispatch(req, route, params, path_known, authenticate, concurrent)
        except GraphError as err:
            resp = err.response()
        self.log.append({
            "method": req.method,
            "path": req.path,
            "query": dict(req.query),
            "template": template,
            "status": resp.status,
        })
        return resp

    def _dispatch(
        self,
        req: Req,
        route: Route | None,
        params: dict[str, str],
        path_known: bool,
        authenticate: bool,
        concurrent: int | None = None,
    ) -> Resp:
        if authenticate:
            pipeline.authenticate(req)
        fault, self.faults = pipeline.take_fault(
            self.faults, req.method, route.template if route else None, req.path,
            in_batch=not authenticate,
        )
        if fault is not None:
            self.faulted += 1
            return pipeline.fault_response(fault)
        if route is None:
            raise pipeline.no_route(req, path_known)
        mailbox = mailbox_limit.mailbox_of(self, req.method, req.path)
        if mailbox is not None:
            mailbox_limit.check(self.inflight[mailbox] if concurrent is None else concurrent)
        req.params = params
        quirks.check(self, req, route, params)
        return route.handler(self, req)
