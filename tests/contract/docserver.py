"""Microsoft's documented example responses, served over real HTTP to the product's readers.

Each fixture in `fixtures/` is one example response of a Graph reference page
(microsoftgraph/microsoft-graph-docs-contrib), kept with its source path and the docs
commit it was read at, plus the request of the product it answers:

    {"source": {"repository", "path", "commit", "example", "note"?},
     "request": {"method", "path", "query"},   # path may hold {id} segments
     "status": 200, "headers": {...}?, "binary": true?, "body": <the example, verbatim>}

`serving(names)` answers the product's requests with the chosen fixtures, through the
real msgraph-sdk pipeline and real HTTP: a request is answered by the fixture whose
method and path match (an `{id}` segment matches any segment) and whose query entries
it carries, the most specific first; `$batch` items are answered the same way, one by
one, unless `verbatim_batch` serves the documented `$batch` answer as it is. Links in a
body that point at graph.microsoft.com are pointed at this server, so the product
follows the documented paging (and nothing leaves the machine). The documented binary
answers (a photo's bytes) have no body in the docs: a few JPEG header bytes stand in.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from aiohttp import web

from tests.support.simulator import serving as serve_app

FIXTURES = Path(__file__).parent / "fixtures"
GRAPH = "https://graph.microsoft.com/v1.0"
PREFIX = "/v1.0"
PHOTO_BYTES = b"\xff\xd8\xff\xe0 documented photo bytes"


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def all_fixtures() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("*.json"))


@dataclass
class DocServer:
    port: int
    names: list[str]
    seen: list[tuple[str, str]] = field(default_factory=list)
    """(method, path with query) of every request answered, `$batch` items included."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}"


def _score(spec: Mapping[str, Any], method: str, path: str, query: Mapping[str, str]
           ) -> tuple[int, int] | None:
    """How well a fixture's request matches (query entries matched, literal segments),
    or None when it does not."""
    if spec["method"] != method:
        return None
    want, have = spec["path"].strip("/").split("/"), path.strip("/").split("/")
    if len(want) != len(have) or any(w != h and w != "{id}" for w, h in zip(want, have,
                                                                              strict=True)):
        return None
    if any(query.get(k) != v for k, v in spec["query"].items()):
        return None
    return len(spec["query"]), sum(w != "{id}" for w in want)


class _Answers:
    def __init__(self, names: list[str], base: str, seen: list[tuple[str, str]]) -> None:
        self.fixtures = [fixture(n) for n in names]
        self.base = base
        self.seen = seen

    def answer(self, method: str, url: str) -> tuple[int, dict[str, str], Any]:
        """(status, headers, body: JSON, bytes or None) for one request."""
        parts = urlsplit(url)
        path = unquote(parts.path).removeprefix(PREFIX)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        self.seen.append((method, path + (f"?{parts.query}" if parts.query else "")))
        scored = [(s, f) for f in self.fixtures
                  if (s := _score(f["request"], method, path, query)) is not None]
        if not scored:
            return 404, {}, {"error": {"code": "contract_no_fixture",
                                       "message": f"no documented answer for {method} {url}"}}
        found = max(scored, key=lambda pair: pair[0])[1]
        headers = dict(found.get("headers") or {})
        if found.get("binary"):
            return found["status"], {**headers, "Content-Type": "image/jpeg"}, PHOTO_BYTES
        body = found["body"]
        if body is not None:
            body = json.loads(json.dumps(body).replace(GRAPH, self.base))
        return found["status"], headers, body


def _app(answers: _Answers, verbatim_batch: bool) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = json.loads(raw) if raw.strip() else None
        if request.method == "POST" and request.path == f"{PREFIX}/$batch":
            if verbatim_batch:
                _, _, doc = answers.answer("POST", "/$batch")
                return web.json_response(doc)
            return web.json_response({"responses": [
                _item(answers, item) for item in (body or {}).get("requests", [])]})
        status, headers, found = answers.answer(request.method, str(request.rel_url))
        if isinstance(found, bytes):
            return web.Response(status=status, body=found, headers=headers)
        if found is None:
            return web.Response(status=status, headers=headers)
        return web.json_response(found, status=status, headers=headers)

    app = web.Application()
    app.router.add_route("*", PREFIX + "/{tail:.*}", handle)
    return app


def _item(answers: _Answers, item: Mapping[str, Any]) -> dict[str, Any]:
    url = str(item["url"])
    url = url if url.startswith("/") else "/" + url
    status, headers, found = answers.answer(str(item["method"]), url)
    out: dict[str, Any] = {"id": item["id"], "status": status, "headers": headers}
    if isinstance(found, bytes):
        out["body"] = base64.b64encode(found).decode()
    elif found is not None:
        out["body"] = found
        out["headers"] = {**headers, "Content-Type": "application/json"}
    return out


@contextmanager
def serving(names: list[str], *, verbatim_batch: bool = False) -> Iterator[DocServer]:
    """Serve the named fixtures (see the module docstring) on a loopback port."""
    seen: list[tuple[str, str]] = []
    answers = _Answers(names, "", seen)
    with serve_app(_app(answers, verbatim_batch), "graph-docs") as port:
        answers.base = f"http://127.0.0.1:{port}{PREFIX}"  # known once the port is
        yield DocServer(port, names, seen)
