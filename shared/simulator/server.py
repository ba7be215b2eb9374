"""The Graph v1.0 simulator as an aiohttp application.

Every Graph request goes through `Simulator.process` (also used by `$batch`
for its sub-requests): route matching on templates, request counting,
authentication, fault injection, then a synchronous handler that reads or
replaces the current `Snapshot`. `/_sim/...` endpoints control the simulator
and need no token.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import json
import re
import secrets
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from aiohttp import web

from shared.config import SIMULATOR_TOKEN
from shared.simulator.tenant import (
    JSON,
    USER_TYPE,
    Change,
    Snapshot,
    TenantFileError,
    build_snapshot,
    event_for_output,
    event_in_window,
    export_tenant,
    group_changes,
    parse_graph_datetime,
    render_group,
    render_group_change,
    render_object,
    render_user,
    render_user_change,
    select_properties,
    user_changes,
    validate_user,
)

MAX_TOP = 999
DEFAULT_LIST_PAGE = 100
DEFAULT_DELTA_PAGE = 200
DEFAULT_CALENDAR_VIEW_PAGE = 10
MAX_BATCH = 20
REQUEST_LOG_SIZE = 1000
GRAPH_PREFIX = "/v1.0"
_REAL_GRAPH = "https://graph.microsoft.com/v1.0"

HYBRID_MESSAGE = (
    "Unable to update the specified properties for on-premises mastered Directory Sync "
    "objects or objects currently undergoing migration."
)


class GraphError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    def response(self) -> Resp:
        body = {"error": {"code": self.code, "message": self.message, "innerError": {
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": str(uuid.uuid4()),
        }}}
        return Resp(self.status, body, dict(self.headers))


def _not_found(what: str) -> GraphError:
    return GraphError(
        404,
        "Request_ResourceNotFound",
        f"Resource '{what}' does not exist or one of its queried reference-property "
        "objects are not present.",
    )


def _bad_request(message: str, code: str = "Request_BadRequest") -> GraphError:
    return GraphError(400, code, message)


@dataclasses.dataclass
class Resp:
    status: int
    body: Any = None  # JSON value, bytes, or None (no body)
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    content_type: str = "application/json"


@dataclasses.dataclass
class Req:
    method: str
    path: str  # without the /v1.0 prefix, decoded
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: Any
    origin: str  # scheme://host:port
    params: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.origin + GRAPH_PREFIX


@dataclasses.dataclass
class Fault:
    method: str  # upper case, or "*"
    path: str
    status: int
    times: int  # -1 = always
    retry_after: int | None


Handler = Callable[[Req], Resp]


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler


def _compile(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[a-zA-Z_]+\})", template)
    regex = "".join(
        f"(?P<{p[1:-1]}>[^/]+)" if p.startswith("{") else re.escape(p) for p in parts
    )
    return re.compile(f"^{regex}/?$")


def _encode_token(data: Mapping[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(token: str) -> dict[str, Any] | None:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, TypeError):
        return None
    return data if isinstance(data, dict) else None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Simulator:
    """All simulator state for one server instance."""

    def __init__(self, tenant: Any, latency_ms: float = 0) -> None:
        self.nonce = secrets.token_hex(8)
        first = build_snapshot(tenant, version=1)
        self.snapshots: dict[int, Snapshot] = {1: first}
        self.current = first
        self.deleted_items: dict[str, JSON] = {}
        self.token_epoch = 0
        self.latency_ms = float(latency_ms)
        self.faults: list[Fault] = []
        self.counts: Counter[str] = Counter()
        self.total = 0
        self.faulted = 0
        self.log: deque[JSON] = deque(maxlen=REQUEST_LOG_SIZE)
        self._delta_cache: dict[tuple[str, int | None, int], list[Change]] = {}
        self.routes: list[Route] = []
        self._register_routes()

    # ------------------------------------------------------------ versions

    def install(self, snap: Snapshot) -> Snapshot:
        """Make `snap` (already numbered current+1) the current version."""
        old = self.current
        now = _now()
        for uid, props in old.users.items():
            if uid not in snap.users:
                self.deleted_items[uid] = {**props, "deletedDateTime": now}
        if self.deleted_items:
            for uid in [u for u in self.deleted_items if u in snap.users]:
                del self.deleted_items[uid]
        self.snapshots[snap.version] = snap
        self.current = snap
        return snap

    def replace_tenant(self, tenant: Any) -> Snapshot:
        return self.install(build_snapshot(tenant, version=self.current.version + 1))

    def next_version(self, **changes: Any) -> Snapshot:
        return self.install(self.current.evolve(self.current.version + 1, **changes))

    def expire_delta_tokens(self) -> None:
        self.token_epoch += 1
        self._delta_cache.clear()

    # ------------------------------------------------------------ routing

    def _register_routes(self) -> None:
        table: list[tuple[str, str, Handler]] = [
            ("GET", "/organization", self.get_organization),
            ("GET", "/users", self.list_users),
            ("POST", "/users", self.create_user),
            ("GET", "/users/delta", self.users_delta),
            ("GET", "/users/{id}", self.get_user),
            ("PATCH", "/users/{id}", self.patch_user),
            ("DELETE", "/users/{id}", self.delete_user),
            ("GET", "/users/{id}/memberOf", self.member_of),
            ("GET", "/users/{id}/transitiveMemberOf", self.transitive_member_of),
            ("GET", "/users/{id}/photo", self.get_photo_meta),
            ("GET", "/users/{id}/photo/$value", self.get_photo_value),
            ("GET", "/users/{id}/calendars", self.list_calendars),
            ("GET", "/users/{id}/calendar", self.get_default_calendar),
            ("GET", "/users/{id}/calendars/{cid}", self.get_calendar),
            ("GET", "/users/{id}/calendar/calendarView", self.calendar_view),
            ("GET", "/users/{id}/calendars/{cid}/calendarView", self.calendar_view),
            ("GET", "/users/{id}/calendarView", self.calendar_view),
            ("GET", "/users/{id}/calendar/events", self.list_events),
            ("GET", "/users/{id}/calendars/{cid}/events", self.list_events),
            ("GET", "/users/{id}/events", self.list_events),
            ("POST", "/users/{id}/calendar/events", self.create_event),
            ("POST", "/users/{id}/calendars/{cid}/events", self.create_event),
            ("POST", "/users/{id}/events", self.create_event),
            ("GET", "/users/{id}/events/{eid}", self.get_event),
            ("PATCH", "/users/{id}/events/{eid}", self.patch_event),
            ("DELETE", "/users/{id}/events/{eid}", self.delete_event),
            ("GET", "/groups", self.list_groups),
            ("GET", "/groups/delta", self.groups_delta),
            ("GET", "/groups/{id}", self.get_group),
            ("GET", "/groups/{id}/members", self.group_members),
            ("GET", "/groups/{id}/transitiveMembers", self.group_transitive_members),
            ("POST", "/groups/{id}/members/$ref", self.add_member),
            ("DELETE", "/groups/{id}/members/{mid}/$ref", self.remove_member),
            ("GET", "/directory/deletedItems/microsoft.graph.user", self.list_deleted_users),
            ("GET", "/directory/deletedItems/{id}", self.get_deleted_item),
            ("POST", "/directory/deletedItems/{id}/restore", self.restore_deleted_item),
            ("POST", "/$batch", self.batch),
        ]
        self.routes = [Route(m, t, _compile(t), h) for m, t, h in table]

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, params, path_known) — path_known is True when only the method is wrong."""
        path_known = False
        for route in self.routes:
            found = route.pattern.match(path)
            if found is None:
                continue
            if route.method == method:
                return route, {k: unquote(v) for k, v in found.groupdict().items()}, True
            path_known = True
        return None, {}, path_known

    def template_for(self, method: str, path: str) -> str:
        route, _, _ = self.match(method, path)
        return route.template if route else path

    def _take_fault(self, method: str, template: str | None, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.method not in ("*", method):
                continue
            if fault.path not in ("*", template, path, path.rstrip("/")):
                continue
            if fault.times == 0:
                continue
            if fault.times > 0:
                fault.times -= 1
            self.faults = [f for f in self.faults if f.times != 0]
            return fault
        return None

    def process(self, req: Req, *, authenticate: bool = True) -> Resp:
        """Count, authenticate, inject faults, dispatch; a Graph error becomes its response."""
        route, params, path_known = self.match(req.method, req.path)
        template = route.template if route else None
        self.counts[f"{req.method} {template or '(unmatched)'}"] += 1
        self.total += 1
        resp = self._process(req, route, params, path_known, authenticate)
        self.log.append({
            "method": req.method,
            "path": req.path,
            "query": dict(req.query),
            "template": template,
            "status": resp.status,
        })
        return resp

    def _process(
        self,
        req: Req,
        route: Route | None,
        params: dict[str, str],
        path_known: bool,
        authenticate: bool,
    ) -> Resp:
        template = route.template if route else None
        try:
            if authenticate:
                self._authenticate(req)
            fault = self._take_fault(req.method, template, req.path)
            if fault is not None:
                self.faulted += 1
                return self._fault_response(fault)
            if route is None:
                if path_known:
                    raise GraphError(
                        405, "Request_BadRequest", f"Method {req.method} is not allowed here."
                    )
                segment = req.path.strip("/").split("/")[-1] if req.path.strip("/") else ""
                raise GraphError(
                    400, "BadRequest", f"Resource not found for the segment '{segment}'."
                )
            req.params = params
            return route.handler(req)
        except GraphError as err:
            return err.response()

    def _authenticate(self, req: Req) -> None:
        header = req.headers.get("authorization")
        if not header:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Access token is empty.",
                {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'},
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or token.strip() != SIMULATOR_TOKEN:
            raise GraphError(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience.",
                {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'},
            )

    @staticmethod
    def _fault_response(fault: Fault) -> Resp:
        headers: dict[str, str] = {}
        if fault.status == 429:
            headers["Retry-After"] = str(fault.retry_after if fault.retry_after is not None else 1)
            code, message = "TooManyRequests", "Too many requests."
        elif fault.status == 503:
            if fault.retry_after is not None:
                headers["Retry-After"] = str(fault.retry_after)
            code, message = "serviceNotAvailable", "Service unavailable. Try again later."
        elif fault.status == 504:
            code, message = "UnknownError", "Gateway timeout."
        elif fault.status == 410:
            code, message = "syncStateNotFound", "The sync state is not found (injected)."
        else:
            code, message = "generalException", f"Injected failure {fault.status}."
        return GraphError(fault.status, code, message, headers).response()

    # ------------------------------------------------------------ query helpers

    @staticmethod
    def _select(req: Req) -> list[str] | None:
        raw = req.query.get("$select")
        if raw is None:
            return None
        fields = [f.strip() for f in raw.split(",") if f.strip()]
        return fields

    @staticmethod
    def _page_size(req: Req, default: int, *, prefer: bool = True) -> tuple[int, bool]:
        """(page size, whether a Prefer maxpagesize was applied)."""
        top = req.query.get("$top")
        if top is not None:
            try:
                value = int(top)
            except ValueError:
                raise _bad_request(f"Invalid value '{top}' for $top.", "BadRequest") from None
            if value < 1 or value > MAX_TOP:
                raise _bad_request(
                    f"Invalid page size specified: '{value}'. Must be between 1 and {MAX_TOP} "
                    "inclusive.",
                    "Request_UnsupportedQuery",
                )
            return value, False
        if prefer:
            found = re.search(r"odata\.maxpagesize\s*=\s*(\d+)", req.headers.get("prefer", ""))
            if found:
                return max(1, min(int(found.group(1)), MAX_TOP)), True
        return default, False

    def _link(self, req: Req, token_name: str, token: str, keep_query: bool = True) -> str:
        params = {}
        if keep_query:
            params = {
                k: v for k, v in req.query.items() if k not in ("$skiptoken", "$deltatoken")
            }
        params[token_name] = token
        query = urlencode(params, quote_via=quote, safe="$,()'")
        return f"{req.base}{req.path.rstrip('/')}?{query}"

    def _context(self, req: Req, entity_set: str, select: Sequence[str] | None) -> str:
        suffix = f"({','.join(select)})" if select else ""
        return f"{req.base}/$metadata#{entity_set}{suffix}"

    def _paged(
        self,
        req: Req,
        build: Callable[[Snapshot], Sequence[Any]],
        render: Callable[[Snapshot, Any], JSON],
        entity_set: str,
        default_page: int = DEFAULT_LIST_PAGE,
        extra_filter: Callable[[Snapshot, Any], bool] | None = None,
    ) -> Resp:
        """A plain collection with `$top` and `@odata.nextLink` paging (stable across versions)."""
        size, applied = self._page_size(req, default_page)
        snap = self.current
        offset = 0
        skip = req.query.get("$skiptoken")
        if skip is not None:
            data = _decode_token(skip)
            if (
                data is None
                or data.get("n") != self.nonce
                or data.get("k") != "page"
                or not isinstance(data.get("o"), int)
                or data.get("v") not in self.snapshots
            ):
                raise _bad_request("Invalid $skiptoken.", "Directory_InvalidSkipToken")
            snap = self.snapshots[data["v"]]
            offset = data["o"]
        items = build(snap)
        if extra_filter is not None:
            items = [i for i in items if extra_filter(snap, i)]
        page = items[offset : offset + size]
        body: JSON = {"@odata.context": self._context(req, entity_set, self._select(req))}
        if req.query.get("$count", "").lower() == "true":
            body["@odata.count"] = len(items)
        body["value"] = [render(snap, item) for item in page]
        if offset + size < len(items):
            token = _encode_token({"n": self.nonce, "k": "page", "v": snap.version,
                                   "o": offset + size})
            body["@odata.nextLink"] = self._link(req, "$skiptoken", token)
        resp = Resp(200, body)
        if applied:
            resp.headers["Preference-Applied"] = f"odata.maxpagesize={size}"
        return resp

    def _user_id(self, req: Req, snap: Snapshot | None = None) -> str:
        snap = snap or self.current
        uid = snap.find_user(req.params["id"])
        if uid is None:
            raise _not_found(req.params["id"])
        return uid

    # ------------------------------------------------------------ organization, users, groups

    def get_organization(self, req: Req) -> Resp:
        select = self._select(req)
        org = select_properties(self.current.organization, select, None)
        return Resp(200, {"@odata.context": self._context(req, "organization", select),
                          "value": [org]})

    def list_users(self, req: Req) -> Resp:
        select = self._select(req)
        flt = _parse_filter(req.query.get("$filter"))
        return self._paged(
            req,
            lambda s: list(s.users),
            lambda s, uid: render_user(s.users[uid], select),
            "users",
            extra_filter=(lambda s, uid: flt(s.users[uid])) if flt else None,
        )

    def get_user(self, req: Req) -> Resp:
        uid = self._user_id(req)
        select = self._select(req)
        body = render_user(self.current.users[uid], select)
        return Resp(200, {"@odata.context": self._context(req, "users/$entity", select), **body})

    def list_groups(self, req: Req) -> Resp:
        select = self._select(req)
        flt = _parse_filter(req.query.get("$filter"))
        return self._paged(
            req,
            lambda s: list(s.groups),
            lambda s, gid: render_group(s.groups[gid], select),
            "groups",
            extra_filter=(lambda s, gid: flt(s.groups[gid])) if flt else None,
        )

    def get_group(self, req: Req) -> Resp:
        gid = req.params["id"]
        if gid not in self.current.groups:
            raise _not_found(gid)
        select = self._select(req)
        body = render_group(self.current.groups[gid], select)
        return Resp(200, {"@odata.context": self._context(req, "groups/$entity", select), **body})

    def _group_listing(self, req: Req, transitive: bool) -> Resp:
        gid = req.params["id"]
        if gid not in self.current.groups:
            raise _not_found(gid)
        select = self._select(req)

        def build(snap: Snapshot) -> Sequence[str]:
            if transitive:
                return snap.transitive_members(gid)
            return snap.members.get(gid, ())

        return self._paged(
            req, build, lambda s, mid: render_object(s, mid, select), "directoryObjects"
        )

    def group_members(self, req: Req) -> Resp:
        return self._group_listing(req, transitive=False)

    def group_transitive_members(self, req: Req) -> Resp:
        return self._group_listing(req, transitive=True)

    def _member_of(self, req: Req, transitive: bool) -> Resp:
        uid = self._user_id(req)
        select = self._select(req)

        def build(snap: Snapshot) -> Sequence[str]:
            direct = [g for g, m in snap.members.items() if uid in m]
            if not transitive:
                return direct
            out: list[str] = []
            seen: set[str] = set()
            queue = list(direct)
            while queue:
                gid = queue.pop(0)
                if gid in seen:
                    continue
                seen.add(gid)
                out.append(gid)
                queue.extend(g for g, m in snap.members.items() if gid in m)
            return out

        return self._paged(
            req, build, lambda s, gid: render_object(s, gid, select), "directoryObjects"
        )

    def member_of(self, req: Req) -> Resp:
        return self._member_of(req, transitive=False)

    def transitive_member_of(self, req: Req) -> Resp:
        return self._member_of(req, transitive=True)

    # ------------------------------------------------------------ delta

    def _changes(self, kind: str, old: int | None, new: int) -> list[Change]:
        key = (kind, old, new)
        cached = self._delta_cache.get(key)
        if cached is not None:
            return cached
        before = None if old is None else self.snapshots[old]
        after = self.snapshots[new]
        changes = user_changes(before, after) if kind == "users" else group_changes(before, after)
        if len(self._delta_cache) >= 16:
            self._delta_cache.pop(next(iter(self._delta_cache)))
        self._delta_cache[key] = changes
        return changes

    def _sync_state_not_found(self) -> GraphError:
        return GraphError(
            410,
            "syncStateNotFound",
            "The sync state generation is not found or has expired. Start a new full "
            "synchronization (resyncRequired).",
        )

    def _token(self, raw: str, kind: str, tag: str) -> dict[str, Any]:
        data = _decode_token(raw)
        if (
            data is None
            or data.get("n") != self.nonce
            or data.get("e") != self.token_epoch
            or data.get("k") != kind
            or data.get("t") != tag
        ):
            raise self._sync_state_not_found()
        return data

    def _delta(self, req: Req, kind: str) -> Resp:
        size, applied = self._page_size(req, DEFAULT_DELTA_PAGE)
        select = self._select(req)
        offset = 0
        old: int | None = None
        new = self.current.version
        if req.query.get("$deltatoken") == "latest":
            old = new  # Graph: no data, just a deltaLink for "from now on"
        elif "$deltatoken" in req.query:
            data = self._token(req.query["$deltatoken"], kind, "d")
            old = data.get("v")
            if not isinstance(old, int) or old not in self.snapshots:
                raise self._sync_state_not_found()
            if select is None:
                select = data.get("s")
        elif "$skiptoken" in req.query:
            data = self._token(req.query["$skiptoken"], kind, "s")
            old_raw, new_raw, offset_raw = data.get("f"), data.get("to"), data.get("o")
            if (
                not isinstance(new_raw, int)
                or new_raw not in self.snapshots
                or not isinstance(offset_raw, int)
                or (
                    old_raw is not None
                    and (not isinstance(old_raw, int) or old_raw not in self.snapshots)
                )
            ):
                raise self._sync_state_not_found()
            old, new, offset = old_raw, new_raw, offset_raw
            if select is None:
                select = data.get("s")
            if not applied and req.query.get("$top") is None:
                size = int(data.get("p") or size)
        changes = self._changes(kind, old, new)
        snap = self.snapshots[new]
        page = changes[offset : offset + size]
        if kind == "users":
            value = [render_user_change(snap, c, select) for c in page]
        else:
            value = [render_group_change(snap, c, select) for c in page]
        body: JSON = {"@odata.context": self._context(req, kind, select), "value": value}
        base = {"n": self.nonce, "e": self.token_epoch, "k": kind, "s": select}
        if offset + size < len(changes):
            token = _encode_token(
                {**base, "t": "s", "f": old, "to": new, "o": offset + size, "p": size}
            )
            body["@odata.nextLink"] = f"{req.base}/{kind}/delta?$skiptoken={token}"
        else:
            token = _encode_token({**base, "t": "d", "v": new})
            body["@odata.deltaLink"] = f"{req.base}/{kind}/delta?$deltatoken={token}"
        resp = Resp(200, body)
        if applied:
            resp.headers["Preference-Applied"] = f"odata.maxpagesize={size}"
        return resp

    def users_delta(self, req: Req) -> Resp:
        return self._delta(req, "users")

    def groups_delta(self, req: Req) -> Resp:
        return self._delta(req, "groups")

    # ------------------------------------------------------------ user writes

    def _forbid_hybrid(self, uid: str) -> None:
        if self.current.users[uid].get("onPremisesSyncEnabled") is True:
            raise GraphError(400, "Request_BadRequest", HYBRID_MESSAGE)

    def _check_upn_domain(self, upn: str) -> None:
        domains = [
            str(d.get("name", "")).lower()
            for d in self.current.organization.get("verifiedDomains", [])
            if isinstance(d, dict)
        ]
        domain = upn.rpartition("@")[2].lower()
        if domains and domain not in domains:
            raise _bad_request(
                "The domain portion of the userPrincipalName property is invalid. You must use "
                "one of the verified domain names in your organization."
            )

    def _body_object(self, req: Req) -> JSON:
        if not isinstance(req.body, dict):
            raise _bad_request("Write requests (excluding DELETE) must contain a JSON object body.",
                               "BadRequest")
        return req.body

    def patch_user(self, req: Req) -> Resp:
        uid = self._user_id(req)
        body = self._body_object(req)
        self._forbid_hybrid(uid)
        for key in ("id", "calendars", "photo", "@odata.type"):
            if key in body:
                raise _bad_request(f"Property '{key}' is read-only and cannot be set.")
        old = self.current.users[uid]
        merged = {**old, **{k: v for k, v in body.items() if k != "passwordProfile"}}
        try:
            props, _, _ = validate_user(merged, "user")
        except TenantFileError as err:
            raise _bad_request(f"Invalid value: {err}") from None
        upn_index = self.current.upn_index
        old_key = old["userPrincipalName"].strip().lower()
        new_key = props["userPrincipalName"].strip().lower()
        if new_key != old_key:
            if new_key in upn_index:
                raise _bad_request(
                    "Another object with the same value for property userPrincipalName "
                    "already exists."
                )
            self._check_upn_domain(props["userPrincipalName"])
            upn_index = {k: v for k, v in upn_index.items() if k != old_key}
            upn_index[new_key] = uid
        if props != old:
            users = dict(self.current.users)
            users[uid] = props
            self.next_version(users=users, upn_index=upn_index)
        return Resp(204)

    def create_user(self, req: Req) -> Resp:
        body = self._body_object(req)
        for key in ("accountEnabled", "displayName", "mailNickname", "userPrincipalName",
                    "passwordProfile"):
            if body.get(key) in (None, ""):
                raise _bad_request(
                    f"Invalid value specified for property '{key}' of resource 'User'."
                )
        profile = body["passwordProfile"]
        if not isinstance(profile, dict) or not profile.get("password"):
            raise _bad_request(
                "Invalid value specified for property 'passwordProfile' of resource 'User'."
            )
        for key in ("calendars", "photo"):
            if key in body:
                raise _bad_request(f"Property '{key}' is not a user property.")
        uid = str(uuid.uuid4())
        raw = {k: v for k, v in body.items() if k not in ("passwordProfile", "id")}
        raw["id"] = uid
        raw.setdefault("mail", None)
        raw.setdefault("onPremisesSyncEnabled", None)
        raw.setdefault("createdDateTime", _now())
        try:
            props, _, _ = validate_user(raw, "user")
        except TenantFileError as err:
            raise _bad_request(f"Invalid value: {err}") from None
        key = props["userPrincipalName"].strip().lower()
        if key in self.current.upn_index:
            raise _bad_request(
                "Another object with the same value for property userPrincipalName already exists."
            )
        self._check_upn_domain(props["userPrincipalName"])
        users = {**self.current.users, uid: props}
        upn_index = {**self.current.upn_index, key: uid}
        self.next_version(users=users, upn_index=upn_index)
        return Resp(201, {"@odata.context": self._context(req, "users/$entity", None), **props})

    def delete_user(self, req: Req) -> Resp:
        uid = self._user_id(req)
        self._forbid_hybrid(uid)
        snap = self.current
        users = {k: v for k, v in snap.users.items() if k != uid}
        upn_index = {k: v for k, v in snap.upn_index.items() if v != uid}
        members = {
            gid: (tuple(m for m in ids if m != uid) if uid in ids else ids)
            for gid, ids in snap.members.items()
        }
        self.next_version(users=users, upn_index=upn_index, members=members)
        return Resp(204)

    def list_deleted_users(self, req: Req) -> Resp:
        select = self._select(req)
        items = list(self.deleted_items)
        size, _ = self._page_size(req, DEFAULT_LIST_PAGE)
        offset = 0
        skip = req.query.get("$skiptoken")
        if skip is not None:
            data = _decode_token(skip)
            if data is None or data.get("k") != "deleted" or not isinstance(data.get("o"), int):
                raise _bad_request("Invalid $skiptoken.", "Directory_InvalidSkipToken")
            offset = data["o"]
        body: JSON = {
            "@odata.context": self._context(req, "directoryObjects", select),
            "value": [
                {"@odata.type": USER_TYPE, **_render_deleted(self.deleted_items[uid], select)}
                for uid in items[offset : offset + size]
            ],
        }
        if offset + size < len(items):
            body["@odata.nextLink"] = self._link(
                req, "$skiptoken", _encode_token({"k": "deleted", "o": offset + size})
            )
        return Resp(200, body)

    def get_deleted_item(self, req: Req) -> Resp:
        item = self.deleted_items.get(req.params["id"])
        if item is None:
            raise _not_found(req.params["id"])
        select = self._select(req)
        return Resp(200, {
            "@odata.context": self._context(req, "directoryObjects/$entity", select),
            "@odata.type": USER_TYPE,
            **_render_deleted(item, select),
        })

    def restore_deleted_item(self, req: Req) -> Resp:
        item = self.deleted_items.get(req.params["id"])
        if item is None:
            raise _not_found(req.params["id"])
        props = {k: v for k, v in item.items() if k != "deletedDateTime"}
        key = props["userPrincipalName"].strip().lower()
        if key in self.current.upn_index:
            raise _bad_request(
                "Another object with the same value for property userPrincipalName already exists."
            )
        uid = props["id"]
        self.next_version(
            users={**self.current.users, uid: props},
            upn_index={**self.current.upn_index, key: uid},
        )
        return Resp(200, {"@odata.context": self._context(req, "directoryObjects/$entity", None),
                          "@odata.type": USER_TYPE, **props})

    # ------------------------------------------------------------ membership writes

    def add_member(self, req: Req) -> Resp:
        gid = req.params["id"]
        snap = self.current
        if gid not in snap.groups:
            raise _not_found(gid)
        body = self._body_object(req)
        ref = body.get("@odata.id")
        if not isinstance(ref, str) or not ref.strip("/"):
            raise _bad_request("Missing '@odata.id' in the request body.", "BadRequest")
        mid = ref.rstrip("/").rsplit("/", 1)[-1]
        mid = mid.removeprefix("directoryObjects('").removesuffix("')")
        if snap.odata_type(mid) is None:
            raise _not_found(mid)
        if mid in snap.members.get(gid, ()):
            raise _bad_request(
                "One or more added object references already exist for the following modified "
                "properties: 'members'."
            )
        members = dict(snap.members)
        members[gid] = (*snap.members.get(gid, ()), mid)
        self.next_version(members=members)
        return Resp(204)

    def remove_member(self, req: Req) -> Resp:
        gid, mid = req.params["id"], req.params["mid"]
        snap = self.current
        if gid not in snap.groups:
            raise _not_found(gid)
        if mid not in snap.members.get(gid, ()):
            raise _not_found(mid)
        members = dict(snap.members)
        members[gid] = tuple(m for m in snap.members[gid] if m != mid)
        self.next_version(members=members)
        return Resp(204)

    # ------------------------------------------------------------ photos

    def get_photo_meta(self, req: Req) -> Resp:
        uid = self._user_id(req)
        photo = self.current.photos.get(uid)
        if photo is None:
            raise GraphError(404, "ImageNotFound", "Exception of type "
                             "'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' "
                             "was thrown.")
        return Resp(200, {
            "@odata.context": f"{req.base}/$metadata#users('{uid}')/photo/$entity",
            "@odata.mediaContentType": photo.content_type,
            "@odata.mediaEtag": f'W/"{hashlib.sha256(photo.data).hexdigest()}"',
            "id": "default",
            "height": None,
            "width": None,
        })

    def get_photo_value(self, req: Req) -> Resp:
        uid = self._user_id(req)
        photo = self.current.photos.get(uid)
        if photo is None:
            raise GraphError(404, "ImageNotFound", "Exception of type "
                             "'Microsoft.Fast.Profile.Core.Exception.ImageNotFoundException' "
                             "was thrown.")
        etag = f'W/"{hashlib.sha256(photo.data).hexdigest()}"'
        return Resp(200, photo.data, {"ETag": etag}, content_type=photo.content_type)

    # ------------------------------------------------------------ calendars

    def _mailbox(self, req: Req) -> tuple[str, list[JSON]]:
        uid = self._user_id(req)
        calendars = self.current.calendars.get(uid)
        if calendars is None:
            raise GraphError(
                404,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            )
        return uid, calendars

    def _calendar(self, req: Req) -> JSON:
        """The calendar a route names: {cid}, else the default calendar (as Graph's
        /users/{id}/calendar, /calendarView and /events do)."""
        _, calendars = self._mailbox(req)
        cid = req.params.get("cid")
        if cid is not None:
            for cal in calendars:
                if cal["id"] == cid:
                    return cal
        else:
            for cal in calendars:
                if cal.get("isDefaultCalendar"):
                    return cal
            if calendars:
                return calendars[0]
        raise GraphError(404, "ErrorItemNotFound",
                         "The specified object was not found in the store.")

    @staticmethod
    def _render_calendar(cal: Mapping[str, Any], select: Sequence[str] | None) -> JSON:
        props = {k: v for k, v in cal.items() if k != "events"}
        return select_properties(props, select, None)

    def list_calendars(self, req: Req) -> Resp:
        _, calendars = self._mailbox(req)
        select = self._select(req)
        return self._paged(
            req,
            lambda _s: calendars,
            lambda _s, cal: self._render_calendar(cal, select),
            "calendars",
        )

    def get_calendar(self, req: Req) -> Resp:
        cal = self._calendar(req)
        select = self._select(req)
        return Resp(200, {"@odata.context": self._context(req, "calendars/$entity", select),
                          **self._render_calendar(cal, select)})

    def get_default_calendar(self, req: Req) -> Resp:
        return self.get_calendar(req)

    def _events(self, req: Req) -> list[JSON]:
        return list(self._calendar(req)["events"])

    def _event_list(self, req: Req, events: list[JSON], default_page: int) -> Resp:
        select = self._select(req)
        size, applied = self._page_size(req, default_page)
        skip = req.query.get("$skiptoken")
        offset = 0
        if skip is not None:
            data = _decode_token(skip)
            if data is None or data.get("k") != "events" or not isinstance(data.get("o"), int):
                raise _bad_request("Invalid $skiptoken.", "ErrorInvalidUrlQuery")
            offset = data["o"]
        body: JSON = {
            "@odata.context": self._context(req, "events", select),
            "value": [
                select_properties(event_for_output(e), select, None)
                for e in events[offset : offset + size]
            ],
        }
        if offset + size < len(events):
            body["@odata.nextLink"] = self._link(
                req, "$skiptoken", _encode_token({"k": "events", "o": offset + size})
            )
        resp = Resp(200, body)
        if applied:
            resp.headers["Preference-Applied"] = f"odata.maxpagesize={size}"
        return resp

    def calendar_view(self, req: Req) -> Resp:
        start_raw = _query_ci(req.query, "startDateTime")
        end_raw = _query_ci(req.query, "endDateTime")
        if not start_raw or not end_raw:
            raise GraphError(
                400,
                "ErrorInvalidParameter",
                "This request requires a time window specified by the query string parameters "
                "StartDateTime and EndDateTime.",
            )
        try:
            start = parse_graph_datetime(start_raw, "startDateTime")
            end = parse_graph_datetime(end_raw, "endDateTime")
        except TenantFileError:
            raise GraphError(400, "ErrorInvalidParameter",
                             "Invalid startDateTime or endDateTime.") from None
        events = [e for e in self._events(req) if event_in_window(e, start, end)]
        events.sort(key=lambda e: (parse_graph_datetime(e.get("start"), "start"), e["id"]))
        return self._event_list(req, events, DEFAULT_CALENDAR_VIEW_PAGE)

    def list_events(self, req: Req) -> Resp:
        return self._event_list(req, self._events(req), DEFAULT_CALENDAR_VIEW_PAGE)

    def create_event(self, req: Req) -> Resp:
        body = self._body_object(req)
        cal = self._calendar(req)
        _, calendars = self._mailbox(req)
        if cal.get("canEdit") is False:
            raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials "
                             "and try again.")
        try:
            start = parse_graph_datetime(body.get("start"), "start")
            end = parse_graph_datetime(body.get("end"), "end")
        except TenantFileError as err:
            raise GraphError(400, "ErrorInvalidRequest", str(err)) from None
        if end < start:
            raise GraphError(400, "ErrorInvalidRequest", "The end is before the start.")
        txn = body.get("transactionId")
        if txn is not None:
            for c in calendars:
                for event in c["events"]:
                    if event.get("transactionId") == txn:
                        return Resp(201, {"@odata.context": self._context(req, "events/$entity",
                                                                          None), **event})
        event = {k: v for k, v in body.items() if k != "id"}
        event["id"] = "AAMk" + secrets.token_urlsafe(24)
        event["iCalUId"] = "040000008200E00074C5B7101A82E008" + secrets.token_hex(16)
        event["createdDateTime"] = event["lastModifiedDateTime"] = _now()
        event.setdefault("showAs", "busy")
        event.setdefault("sensitivity", "normal")
        cal["events"].append(event)
        return Resp(201, {"@odata.context": self._context(req, "events/$entity", None), **event})

    def _find_event(self, req: Req) -> tuple[JSON, JSON]:
        _, calendars = self._mailbox(req)
        for cal in calendars:
            for event in cal["events"]:
                if event["id"] == req.params["eid"]:
                    return cal, event
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in the "
                         "store.")

    def get_event(self, req: Req) -> Resp:
        _, event = self._find_event(req)
        select = self._select(req)
        return Resp(200, {"@odata.context": self._context(req, "events/$entity", select),
                          **select_properties(event, select, None)})

    def patch_event(self, req: Req) -> Resp:
        body = self._body_object(req)
        cal, event = self._find_event(req)
        if "id" in body:
            raise GraphError(400, "ErrorInvalidPropertyUpdateSentAsPatch",
                             "The property 'id' is read-only.")
        merged = {**event, **body, "lastModifiedDateTime": _now()}
        try:
            start = parse_graph_datetime(merged.get("start"), "start")
            end = parse_graph_datetime(merged.get("end"), "end")
        except TenantFileError as err:
            raise GraphError(400, "ErrorInvalidRequest", str(err)) from None
        if end < start:
            raise GraphError(400, "ErrorInvalidRequest", "The end is before the start.")
        cal["events"] = [merged if e is event else e for e in cal["events"]]
        return Resp(200, {"@odata.context": self._context(req, "events/$entity", None), **merged})

    def delete_event(self, req: Req) -> Resp:
        cal, event = self._find_event(req)
        cal["events"] = [e for e in cal["events"] if e is not event]
        return Resp(204)

    # ------------------------------------------------------------ $batch

    def batch(self, req: Req) -> Resp:
        body = req.body
        if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
            raise _bad_request("Invalid batch payload format.", "BadRequest")
        requests = body["requests"]
        if len(requests) > MAX_BATCH:
            raise _bad_request(
                f"The number of requests in a batch ({len(requests)}) exceeds the limit of "
                f"{MAX_BATCH}.",
                "BadRequest",
            )
        ids: set[str] = set()
        for item in requests:
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("id"), str)
                or not isinstance(item.get("method"), str)
                or not isinstance(item.get("url"), str)
            ):
                raise _bad_request("Each batch request needs string id, method and url.",
                                   "BadRequest")
            if item["id"] in ids:
                raise _bad_request(f"Request id '{item['id']}' is duplicated.", "BadRequest")
            ids.add(item["id"])
        responses: list[JSON] = []
        for item in requests:
            sub = self._sub_request(req, item)
            if sub.path.rstrip("/") == "/$batch":
                resp = _bad_request("Nested $batch is not supported.", "BadRequest").response()
            else:
                resp = self.process(sub, authenticate=False)
            headers = dict(resp.headers)
            if resp.body is not None:
                headers["Content-Type"] = resp.content_type
            entry: JSON = {"id": item["id"], "status": resp.status, "headers": headers}
            if isinstance(resp.body, bytes):
                entry["body"] = base64.b64encode(resp.body).decode()
            elif resp.body is not None:
                entry["body"] = resp.body
            responses.append(entry)
        return Resp(200, {"responses": responses})

    @staticmethod
    def _sub_request(req: Req, item: Mapping[str, Any]) -> Req:
        url: str = item["url"]
        for prefix in (_REAL_GRAPH, req.base, GRAPH_PREFIX):
            if url.startswith(prefix):
                url = url[len(prefix):]
                break
        parts = urlsplit(url if url.startswith("/") else "/" + url)
        headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
        return Req(
            method=item["method"].upper(),
            path=unquote(parts.path),
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=headers,
            body=item.get("body"),
            origin=req.origin,
        )


def _render_deleted(item: Mapping[str, Any], select: Sequence[str] | None) -> JSON:
    body = render_user(item, select)
    body["deletedDateTime"] = item.get("deletedDateTime")
    return body


def _query_ci(query: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    for key, value in query.items():
        if key.lower() == lowered:
            return value
    return None


_FILTER_TERM = re.compile(
    r"^\s*(?:(?P<prop>[A-Za-z]+)\s+eq\s+(?P<lit>'(?:[^']|'')*'|true|false|null)"
    r"|startswith\(\s*(?P<sprop>[A-Za-z]+)\s*,\s*(?P<slit>'(?:[^']|'')*')\s*\))\s*$"
)


def _parse_filter(raw: str | None) -> Callable[[Mapping[str, Any]], bool] | None:
    """A small `$filter`: `prop eq 'x'`, `startswith(prop,'x')`, joined by `or` / `and`."""
    if raw is None or not raw.strip():
        return None

    def literal(text: str) -> Any:
        if text.startswith("'"):
            return text[1:-1].replace("''", "'")
        return {"true": True, "false": False, "null": None}[text]

    def term(text: str) -> Callable[[Mapping[str, Any]], bool]:
        found = _FILTER_TERM.match(text)
        if found is None:
            raise _bad_request(f"Unsupported or invalid filter clause: {text.strip()}",
                               "Request_UnsupportedQuery")
        if found.group("prop"):
            prop, value = found.group("prop"), literal(found.group("lit"))
            if isinstance(value, str):
                wanted = value.lower()
                return lambda o: isinstance(o.get(prop), str) and o[prop].lower() == wanted
            return lambda o: o.get(prop) == value
        sprop, prefix = found.group("sprop"), literal(found.group("slit")).lower()
        return lambda o: isinstance(o.get(sprop), str) and o[sprop].lower().startswith(prefix)

    alternatives = []
    for alt in re.split(r"\s+or\s+", raw):
        alternatives.append([term(t) for t in re.split(r"\s+and\s+", alt)])
    return lambda o: any(all(t(o) for t in conj) for conj in alternatives)


# ---------------------------------------------------------------- aiohttp glue

SIMULATOR_KEY = web.AppKey("simulator", Simulator)


def _to_web(resp: Resp, request_id: str) -> web.Response:
    headers = {"request-id": request_id, "client-request-id": request_id, **resp.headers}
    if resp.body is None:
        return web.Response(status=resp.status, headers=headers)
    if isinstance(resp.body, bytes):
        return web.Response(status=resp.status, body=resp.body, headers=headers,
                            content_type=resp.content_type)
    text = json.dumps(resp.body, separators=(",", ":"))
    return web.Response(status=resp.status, text=text, headers=headers,
                        content_type="application/json")


async def _read_json(request: web.Request) -> tuple[Any, bool]:
    """(parsed body or None, ok)."""
    raw = await request.read()
    if not raw.strip():
        return None, True
    try:
        return json.loads(raw), True
    except ValueError:
        return None, False


async def _graph_handler(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR_KEY]
    request_id = request.headers.get("client-request-id") or str(uuid.uuid4())
    if sim.latency_ms > 0:
        await asyncio.sleep(sim.latency_ms / 1000)
    body, ok = await _read_json(request)
    if not ok:
        err = _bad_request("Unable to read JSON request payload.", "BadRequest")
        return _to_web(err.response(), request_id)
    path = request.path[len(GRAPH_PREFIX):] or "/"
    req = Req(
        method=request.method.upper(),
        path=path,
        query={k: v for k, v in request.query.items()},
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        origin=f"{request.scheme}://{request.host}",
    )
    return _to_web(sim.process(req), request_id)


def _sim_error(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": {"code": "invalidRequest", "message": message}},
                             status=status)


async def _put_tenant(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR_KEY]
    body, ok = await _read_json(request)
    if not ok:
        return _sim_error("body is not valid JSON")
    try:
        snap = sim.replace_tenant(body)
    except TenantFileError as err:
        return web.json_response({"error": {"code": "invalidTenant", "message": str(err)}},
                                 status=400)
    return web.json_response({"version": snap.version, "users": len(snap.users),
                              "groups": len(snap.groups)})


async def _get_tenant(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR_KEY]
    return web.json_response(export_tenant(sim.current))


async def _get_state(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR_KEY]
    snap = sim.current
    return web.json_response({
        "version": snap.version,
        "users": len(snap.users),
        "groups": len(snap.groups),
        "deletedUsers": len(sim.deleted_items),
        "latencyMs": sim.latency_ms,
        "tokenEpoch": sim.token_epoch,
    })


async def _get_requests(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR_KEY]
    body: JSON = {"total": sim.total, "faulted": sim.faulted,
                  "byEndpoint": dict(sorted(sim.counts.items()))}
    if request.query.get("log", "").lower() in ("1", "true"):
        body["log"] = list(sim.log)
    return web.json_response(body)


async def _delete_requests(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR_KEY]
    sim.counts.clear()
    sim.log.clear()
    sim.total = 0
    sim.faulted = 0
    return web.Response(status=204)


def _parse_fault(raw: Any) -> Fault:
    if not isinstance(raw, dict):
        raise ValueError("fault: must be an object")
    method = raw.get("method", "*")
    if not isinstance(method, str) or not method:
        raise ValueError("fault.method: must be an HTTP method or '*'")
    path = raw.get("path")
    if not isinstance(path, str) or not (path.startswith("/") or path == "*"):
        raise ValueError(
            "fault.path: required, a route template or path starting with '/', or '*'"
        )
    path = path.removeprefix(GRAPH_PREFIX) or "/"
    if len(path) > 1:
        path = path.rstrip("/")
    status = raw.get("status")
    if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
        raise ValueError("fault.status: required, an HTTP error status (400-599)")
    times = raw.get("times", 1)
    if not isinstance(times, int) or isinstance(times, bool) or times == 0 or times < -1:
        raise ValueError("fault.times: a positive count, or -1 for always")
    retry = raw.get("retryAfter")
    if retry is not None and (not isinstance(retry, int) or isinstance(retry, bool) or retry < 0):
        raise ValueError("fault.retryAfter: a non-negative number of seconds")
    return Fault(method.upper(), path, status, times, retry)


def _fault_json(fault: Fault) -> JSON:
    return {"method": fault.method, "path": fault.path, "status": fault.status,
            "times": fault.times, "retryAfter": fault.retry_after}


async def _post_faults(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR_KEY]
    body, ok = await _read_json(request)
    if not ok:
        return _sim_error("body is not valid JSON")
    items = body if isinstance(body, list) else [body]
    try:
        faults = [_parse_fault(item) for item in items]
    except ValueError as err:
        return _sim_error(str(err))
    sim.faults.extend(faults)
    return web.json_response({"faults": [_fault_json(f) for f in sim.faults]})


async def _get_faults(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR_KEY]
    return web.json_response({"faults": [_fault_json(f) for f in sim.faults]})


async def _delete_faults(request: web.Request) -> web.StreamResponse:
    request.app[SIMULATOR_KEY].faults.clear()
    return web.Response(status=204)


async def _expire_tokens(request: web.Request) -> web.StreamResponse:
    request.app[SIMULATOR_KEY].expire_delta_tokens()
    return web.Response(status=204)


async def _put_latency(request: web.Request) -> web.StreamResponse:
    sim = request.app[SIMULATOR_KEY]
    body, ok = await _read_json(request)
    value = body.get("ms") if ok and isinstance(body, dict) else None
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        return _sim_error("latency.ms: required, a non-negative number of milliseconds")
    sim.latency_ms = float(value)
    return web.json_response({"ms": sim.latency_ms})


def create_app(tenant: dict[str, Any], *, latency_ms: float = 0) -> web.Application:
    """The simulator app serving `tenant` (a parsed tenant file) under /v1.0.

    Raises TenantFileError when the tenant is not valid.
    """
    sim = Simulator(tenant, latency_ms)
    app = web.Application(client_max_size=1024 * 1024 * 1024)
    app[SIMULATOR_KEY] = sim
    app.router.add_put("/_sim/tenant", _put_tenant)
    app.router.add_get("/_sim/tenant", _get_tenant)
    app.router.add_get("/_sim/state", _get_state)
    app.router.add_get("/_sim/requests", _get_requests)
    app.router.add_delete("/_sim/requests", _delete_requests)
    app.router.add_get("/_sim/faults", _get_faults)
    app.router.add_post("/_sim/faults", _post_faults)
    app.router.add_delete("/_sim/faults", _delete_faults)
    app.router.add_post("/_sim/expire-delta-tokens", _expire_tokens)
    app.router.add_put("/_sim/latency", _put_latency)
    app.router.add_route("*", GRAPH_PREFIX + "/{tail:.*}", _graph_handler)
    return app
