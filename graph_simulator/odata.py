"""OData query options and paging shared by the Graph collection routes.

`$select`, `$top` / `Prefer: odata.maxpagesize`, `$count`, a small `$filter`,
`@odata.context`, and `@odata.nextLink` built from `$skiptoken`.

Invariants: a nextLink keeps the request's other query options, so the next page
is the same query; `paged` pins the snapshot version in its token, so a listing
paged across a tenant change stays one consistent view (Graph does the same
within a page sequence). Tokens carry the simulator's nonce, so a token from
another simulator run is rejected instead of silently misread.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from graph_simulator.protocol import Req, Resp, bad_request, decode_token, encode_token
from graph_simulator.tenant import JSON, Snapshot

if TYPE_CHECKING:
    from graph_simulator.state import Simulator

MAX_TOP = 999
DEFAULT_LIST_PAGE = 100


def select(req: Req) -> list[str] | None:
    """The `$select` fields, or None when absent (each route has its own default set)."""
    raw = req.query.get("$select")
    if raw is None:
        return None
    return [f.strip() for f in raw.split(",") if f.strip()]


def page_size(req: Req, default: int, *, prefer: bool = True) -> tuple[int, bool]:
    """(page size, whether a Prefer maxpagesize was applied); `$top` wins over Prefer."""
    top = req.query.get("$top")
    if top is not None:
        try:
            value = int(top)
        except ValueError:
            raise bad_request(f"Invalid value '{top}' for $top.", "BadRequest") from None
        if value < 1 or value > MAX_TOP:
            raise bad_request(
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


def with_preference(resp: Resp, applied: bool, size: int) -> Resp:
    """Echo an honoured `Prefer: odata.maxpagesize` the way Graph does."""
    if applied:
        resp.headers["Preference-Applied"] = f"odata.maxpagesize={size}"
    return resp


def link(req: Req, token_name: str, token: str) -> str:
    """This request's URL with its paging token replaced by `token_name=token`."""
    params = {k: v for k, v in req.query.items() if k not in ("$skiptoken", "$deltatoken")}
    params[token_name] = token
    query = urlencode(params, quote_via=quote, safe="$,()'")
    return f"{req.base}{req.path.rstrip('/')}?{query}"


def context(req: Req, entity_set: str, fields: Sequence[str] | None) -> str:
    suffix = f"({','.join(fields)})" if fields else ""
    return f"{req.base}/$metadata#{entity_set}{suffix}"


def paged(
    sim: Simulator,
    req: Req,
    build: Callable[[Snapshot], Sequence[Any]],
    render: Callable[[Snapshot, Any], JSON],
    entity_set: str,
    extra_filter: Callable[[Snapshot, Any], bool] | None = None,
) -> Resp:
    """A directory collection with `$top` and `@odata.nextLink` paging (stable across versions)."""
    size, applied = page_size(req, DEFAULT_LIST_PAGE)
    snap = sim.current
    offset = 0
    skip = req.query.get("$skiptoken")
    if skip is not None:
        data = decode_token(skip)
        if (
            data is None
            or data.get("n") != sim.nonce
            or data.get("k") != "page"
            or not isinstance(data.get("o"), int)
            or data.get("v") not in sim.snapshots
        ):
            raise bad_request("Invalid $skiptoken.", "Directory_InvalidSkipToken")
        snap = sim.snapshots[data["v"]]
        offset = data["o"]
    items = build(snap)
    if extra_filter is not None:
        items = [i for i in items if extra_filter(snap, i)]
    page = items[offset : offset + size]
    body: JSON = {"@odata.context": context(req, entity_set, select(req))}
    if req.query.get("$count", "").lower() == "true":
        body["@odata.count"] = len(items)
    body["value"] = [render(snap, item) for item in page]
    if offset + size < len(items):
        token = encode_token({"n": sim.nonce, "k": "page", "v": snap.version, "o": offset + size})
        body["@odata.nextLink"] = link(req, "$skiptoken", token)
    return with_preference(Resp(200, body), applied, size)


def offset_page(
    req: Req, items: Sequence[Any], kind: str, size: int, invalid_code: str
) -> tuple[Sequence[Any], str | None]:
    """(this page of `items`, its nextLink or None) for a list that is not versioned.

    Used where the items are not part of a snapshot (deleted users, events), so the
    token holds only an offset and its `kind`, and a token of another kind is refused
    with `invalid_code`.
    """
    offset = 0
    skip = req.query.get("$skiptoken")
    if skip is not None:
        data = decode_token(skip)
        if data is None or data.get("k") != kind or not isinstance(data.get("o"), int):
            raise bad_request("Invalid $skiptoken.", invalid_code)
        offset = data["o"]
    next_link = None
    if offset + size < len(items):
        next_link = link(req, "$skiptoken", encode_token({"k": kind, "o": offset + size}))
    return items[offset : offset + size], next_link


def query_ci(query: Mapping[str, str], name: str) -> str | None:
    """A query parameter by case-insensitive name (Graph accepts `StartDateTime` too)."""
    lowered = name.lower()
    for key, value in query.items():
        if key.lower() == lowered:
            return value
    return None


_FILTER_TERM = re.compile(
    r"^\s*(?:(?P<prop>[A-Za-z]+)\s+eq\s+(?P<lit>'(?:[^']|'')*'|true|false|null)"
    r"|startswith\(\s*(?P<sprop>[A-Za-z]+)\s*,\s*(?P<slit>'(?:[^']|'')*')\s*\))\s*$"
)


def parse_filter(raw: str | None) -> Callable[[Mapping[str, Any]], bool] | None:
    """A small `$filter`: `prop eq 'x'`, `startswith(prop,'x')`, joined by `or` / `and`.

    String comparisons ignore case, as the directory's do. Anything else is refused
    rather than ignored, so a caller never mistakes an unfiltered list for a filtered one.
    """
    if raw is None or not raw.strip():
        return None

    def literal(text: str) -> Any:
        if text.startswith("'"):
            return text[1:-1].replace("''", "'")
        return {"true": True, "false": False, "null": None}[text]

    def term(text: str) -> Callable[[Mapping[str, Any]], bool]:
        found = _FILTER_TERM.match(text)
        if found is None:
            raise bad_request(f"Unsupported or invalid filter clause: {text.strip()}",
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
