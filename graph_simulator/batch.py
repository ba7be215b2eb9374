"""`POST /$batch`: up to 20 Graph requests in one, answered in request order.

Each sub-request runs through the same `Simulator.process` as a plain request
(counted, logged, faults applied), but is not authenticated again: the batch
request itself carried the token. Sub-request URLs may be relative, `/v1.0/...`,
this simulator's absolute URL or graph.microsoft.com's. Nested batches are
refused per item, and binary bodies (photos) come back base64-encoded, as JSON
batch responses require. `dependsOn` is ignored: items always run one after another, in order.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlsplit

from graph_simulator import mailbox_limit
from graph_simulator.protocol import GRAPH_PREFIX, Req, Resp, bad_request
from graph_simulator.tenant import JSON

if TYPE_CHECKING:
    from graph_simulator.state import Simulator

MAX_BATCH = 20
_REAL_GRAPH = "https://graph.microsoft.com/v1.0"


def _check_requests(body: Any) -> list[Mapping[str, Any]]:
    """The batch's request items, after Graph's checks on the payload as a whole."""
    if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
        raise bad_request("Invalid batch payload format.", "BadRequest")
    requests: list[Mapping[str, Any]] = body["requests"]
    if len(requests) > MAX_BATCH:
        raise bad_request(
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
            raise bad_request("Each batch request needs string id, method and url.", "BadRequest")
        if item["id"] in ids:
            raise bad_request(f"Request id '{item['id']}' is duplicated.", "BadRequest")
        ids.add(item["id"])
    return requests


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


def _entry(item_id: str, resp: Resp) -> JSON:
    headers = dict(resp.headers)
    if resp.body is not None:
        headers["Content-Type"] = resp.content_type
    entry: JSON = {"id": item_id, "status": resp.status, "headers": headers}
    if isinstance(resp.body, bytes):
        entry["body"] = base64.b64encode(resp.body).decode()
    elif resp.body is not None:
        entry["body"] = resp.body
    return entry


def sub_requests(req: Req, items: list[dict[str, Any]]) -> list[Req]:
    """The items of a batch as requests (the transport counts their mailboxes)."""
    return [_sub_request(req, item) for item in items]


def batch(sim: Simulator, req: Req) -> Resp:
    responses: list[JSON] = []
    items = _check_requests(req.body)
    subs = [_sub_request(req, item) for item in items]
    # Items run side by side: each counts against its mailbox's limit together with the
    # batch's earlier items for that mailbox and what else is in flight for it.
    mine = Counter(mailbox_limit.mailboxes_of(sim, subs))
    seen: Counter[str] = Counter()
    for item, sub in zip(items, subs, strict=True):
        mailbox = mailbox_limit.mailbox_of(sim, sub.method, sub.path)
        concurrent = None
        if mailbox is not None:
            seen[mailbox] += 1
            concurrent = max(sim.inflight[mailbox] - mine[mailbox], 0) + seen[mailbox]
        if sub.path.rstrip("/") == "/$batch":
            resp = bad_request("Nested $batch is not supported.", "BadRequest").response()
        else:
            resp = sim.process(sub, authenticate=False, concurrent=concurrent)
        responses.append(_entry(item["id"], resp))
    return Resp(200, {"responses": responses})
