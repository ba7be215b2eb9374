"""The simulator's Graph subscriptions: Graph's checks and validation handshake before a
subscription exists, the expiry cap, and change/lifecycle notifications in Graph's
body shape delivered to a (loopback) receiver on PUT /_sim/tenant."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.simulator.conftest import clone
from tests.support.simulator import RunningSimulator


@contextmanager
def receiver(echo: bool = True) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback URL that answers the handshake (when `echo`) and records bodies."""
    bodies: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = dict(parse_qsl(urlsplit(self.path).query))
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            if "validationToken" in query:
                answer = query["validationToken"].encode() if echo else b"nope"
                self.send_response(200)
                self.send_header("content-type", "text/plain")
            else:
                bodies.append({"query": query, "body": json.loads(raw)})
                answer = b""
                self.send_response(202)
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook?code=k", bodies
    finally:
        server.shutdown()
        server.server_close()


def expiry(minutes: float) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def subscribe(sim: RunningSimulator, url: str, **overrides: Any) -> Any:
    body = {"changeType": "updated,deleted", "resource": "groups", "notificationUrl": url,
            "lifecycleNotificationUrl": url, "clientState": "s3cret",
            "expirationDateTime": expiry(60), **overrides}
    return sim.graph("POST", "/subscriptions", json=body)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_create_validates_the_url_first_then_delivers_changes_in_graphs_shape(
        sim: RunningSimulator, tenant: dict[str, Any]) -> None:
    with receiver() as (url, bodies):
        created = subscribe(sim, url)
        assert created.status_code == 201, created.text
        sub = created.json()
        assert sim.graph("GET", f"/subscriptions/{sub['id']}").json()["resource"] == "groups"
        changed = clone(tenant)
        group = changed["groups"][0]
        group["members"] = group["members"][1:]
        sim.put_tenant(changed)
        assert len(bodies) == 1
        assert bodies[0]["query"] == {"code": "k"}  # the key in the URL is kept
        (item,) = bodies[0]["body"]["value"]
        assert item["subscriptionId"] == sub["id"] and item["clientState"] == "s3cret"
        assert item["changeType"] == "updated"
        assert item["resource"] == f"Groups/{group['id']}"
        assert item["resourceData"]["id"] == group["id"]
        assert item["resourceData"]["@odata.type"] == "#Microsoft.Graph.Group"
        assert set(item) == {"subscriptionId", "subscriptionExpirationDateTime", "changeType",
                             "clientState", "resource", "resourceData", "tenantId"}

        # Lifecycle on demand; subscriptionRemoved removes it.
        answer = sim.http.post(f"/_sim/subscriptions/{sub['id']}/lifecycle",
                               json={"event": "subscriptionRemoved"})
        assert answer.json() == {"status": 202}
        assert bodies[1]["body"]["value"][0]["lifecycleEvent"] == "subscriptionRemoved"
        assert sim.graph("GET", f"/subscriptions/{sub['id']}").status_code == 404
        bad = sim.http.post(f"/_sim/subscriptions/{sub['id']}/lifecycle",
                            json={"event": "nope"})
        assert bad.status_code == 400 and "lifecycle.event" in bad.text


@pytest.mark.parametrize(
    ("case", "overrides", "message"),
    [
        # Minutes from now, made when the test runs (collection may be long before).
        ("beyond the cap", {"expirationDateTime": 41_760 + 5}, "41760 minutes"),
        ("in the past", {"expirationDateTime": -1}, "in the future"),
        ("created on groups", {"changeType": "created,updated"}, "not supported"),
        ("unknown resource", {"resource": "me/messages"}, "not supported"),
        ("not loopback", {"notificationUrl": "https://example.com/hook"}, "loopback"),
        ("clientState too long", {"clientState": "x" * 129}, "128"),
    ],
)
def test_create_refuses_what_graph_refuses(sim: RunningSimulator, case: str,
                                          overrides: dict[str, Any], message: str) -> None:
    if isinstance(overrides.get("expirationDateTime"), int):
        overrides = {**overrides, "expirationDateTime": expiry(overrides["expirationDateTime"])}
    with receiver() as (url, _):
        answer = subscribe(sim, url, **overrides)
    assert answer.status_code == 400, case
    assert message in answer.json()["error"]["message"], case
    assert sim.graph("GET", "/subscriptions").json()["value"] == []


def test_a_failed_handshake_creates_nothing(sim: RunningSimulator) -> None:
    with receiver(echo=False) as (url, _):
        wrong = subscribe(sim, url)
    nobody = subscribe(sim, f"http://127.0.0.1:{free_port()}/hook")
    for answer in (wrong, nobody):
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "ValidationError"
    assert sim.graph("GET", "/subscriptions").json()["value"] == []


def test_renew_reauthorize_delete(sim: RunningSimulator) -> None:
    with receiver() as (url, _):
        sub = subscribe(sim, url).json()
    path = f"/subscriptions/{sub['id']}"
    later = expiry(40_000)
    renewed = sim.graph("PATCH", path, json={"expirationDateTime": later})
    assert renewed.status_code == 200 and renewed.json()["expirationDateTime"] == later
    assert sim.graph("PATCH", path, json={"expirationDateTime": expiry(50_000)}
                     ).status_code == 400
    assert sim.graph("PATCH", path, json={"resource": "users"}).status_code == 400
    assert sim.graph("POST", f"{path}/reauthorize").status_code == 204
    assert sim.graph("DELETE", path).status_code == 204
    assert sim.graph("PATCH", path, json={"expirationDateTime": later}).status_code == 404
    assert sim.graph("GET", "/subscriptions", headers={"Authorization": "Bearer x"}
                     ).status_code == 401


def test_expired_subscriptions_get_nothing(sim: RunningSimulator,
                                           tenant: dict[str, Any]) -> None:
    with receiver() as (url, bodies):
        sub = subscribe(sim, url, resource="users").json()
        sim.simulator.subscriptions[sub["id"]]["expirationDateTime"] = expiry(-1)
        changed = clone(tenant)
        changed["users"][0]["accountEnabled"] = False
        sim.put_tenant(changed)
    assert bodies == []
