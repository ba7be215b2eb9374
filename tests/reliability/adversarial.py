"""The adversarial classes of issue 24, for the reliability tests (small counts) and
`python -m bench.reliability` (the counts in docs/emply-api.md "Under attack"):

- **hostile requests**: what schemathesis generates from the OpenAPI document, one
  part made hostile (`tests/support/hostile.py`); a 5xx, a refusal that changed the
  Emply side, or non-standard JSON in an answer is `wrong`;
- **uniqueness races**: writers PUTting different users with one username (or one
  Entra id) at once, and writers creating one new id at once; two holders of a value,
  or other than exactly one 201, is `wrong`;
- **contended PATCHes**: many PATCHes at once; an answer that is not the truth (200
  and not stored, or 5xx and stored) is `wrong`;
- **lifecycle replays**: one `subscriptionRemoved` delivered many times and handled at
  once; a subscription left at Graph that the store does not know, or none kept, is
  `wrong`.

Every request goes to the real functions, against real Azurite and the Graph simulator.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import azure.functions as func

from shared import config
from shared import store as store_mod
from shared.notify import inbox, renewal
from tests.e2e.test_http import function
from tests.reliability.harness import Tally
from tests.support import run_queue as rq


def _user(n: int, **extra: Any) -> dict[str, Any]:
    return {"id": f"race-{n}", "username": f"race{n}@contoso.com", "roles": ["employee"],
            **extra}


def _put(body: dict[str, Any]) -> Any:
    return function("put_user")(func.HttpRequest(
        method="PUT", url=f"/api/users/{body['id']}", body=json.dumps(body).encode(),
        route_params={"id": body["id"]}))


def hostile_request(world: Any, generated: tuple[str, str, func.HttpRequest],
                    tally: Tally, state: Callable[[], Any]) -> None:
    """One hostile request (`tests.e2e.test_openapi.hostile_requests`)."""
    method, name, request = generated
    tally.hostile += 1
    before = state() if method != "GET" else None
    try:
        response = asyncio.run(function(name)(request))
    except Exception as exc:  # the host would answer 500
        tally.problem("wrong", f"{name}: {type(exc).__name__}"[:200])
        return
    if response.status_code >= 500:
        tally.problem("wrong", f"{name}: {response.status_code} "
                      f"{response.get_body()[:200]!r}")
    elif response.status_code >= 400 and before is not None and state() != before:
        tally.problem("wrong", f"{name}: refused ({response.status_code}) but changed state")
    elif (response.mimetype or "").endswith("json"):
        try:
            json.loads(response.get_body() or b"null",
                       parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        except ValueError as exc:
            tally.problem("wrong", f"{name}: non-standard JSON answered ({exc})"[:200])


async def uniqueness_races(world: Any, rounds: int, writers: int, tally: Tally) -> None:
    """Each round: `writers` PUTs of new users sharing a username, then an Entra id, then
    `writers` PUTs creating one new id."""
    for round_ in range(rounds):
        base = 1000 * (round_ + 1)
        for field, value in (("username", f"same{round_}@contoso.com"),
                             ("entraId", f"ENTRA-RACE-{round_}")):
            bodies = [_user(base + i, **{field: value}) for i in range(writers)]
            answers = await asyncio.gather(*(_put(b) for b in bodies))
            tally.races += 1
            created = sum(a.status_code == 201 for a in answers)
            if created != 1 or any(a.status_code >= 500 for a in answers):
                tally.problem("wrong", f"race for one {field}: "
                              f"{sorted(a.status_code for a in answers)}")
            base += writers
        new = _user(base + 500)
        answers = await asyncio.gather(*(_put({**new, "displayName": f"w{i}"})
                                         for i in range(writers)))
        tally.races += 1
        statuses = sorted(a.status_code for a in answers)
        # One 201; the others replaced it (200), or after many collisions said so and
        # wrote nothing (409, concurrent_change): both the truth.
        if statuses.count(201) != 1 or set(statuses) - {200, 201, 409}:
            tally.problem("wrong", f"creating one id: {statuses}")
    users = world.export()["users"]
    for field in ("username", "entraId"):
        values = [str(u[field]).strip().casefold() for u in users if u.get(field)]
        if len(values) != len(set(values)):
            tally.problem("wrong", f"two users hold one {field}")


async def contended_patches(world: Any, writers: int, tally: Tally) -> None:
    """`writers` PATCHes of as many users at once; every answer checked against storage."""
    ids = [u["id"] for u in world.export()["users"]][:writers]
    stamp = f"patched-{len(ids)}-{tally.patches}"
    answers = await asyncio.gather(*(function("patch_user")(func.HttpRequest(
        method="PATCH", url=f"/api/users/{i}", route_params={"id": i},
        body=json.dumps({"displayName": f"{stamp}-{i}"}).encode())) for i in ids))
    stored = {u["id"]: u.get("displayName") for u in world.export()["users"]}
    for user_id, answer in zip(ids, answers, strict=True):
        tally.patches += 1
        written = stored.get(user_id) == f"{stamp}-{user_id}"
        if (answer.status_code == 200) != written or (answer.status_code >= 500 and written):
            tally.problem("wrong", f"PATCH {user_id} answered {answer.status_code}, "
                          f"{'stored' if written else 'not stored'}")


async def lifecycle_replays(world: Any, rounds: int, deliveries: int, tally: Tally) -> None:
    """Each round Graph removes the groups subscription and delivers its
    `subscriptionRemoved` `deliveries` times; the workers handle them all at once.
    Notifications must be on (settings and the notify server: the caller's)."""
    await renewal.keep()
    conn = world.azurite.connection_string
    for _round in range(rounds):
        subs = {s["resource"]: s for s in
                world.sim.graph("GET", "/subscriptions").json()["value"]}
        old = subs["groups"]
        world.sim.graph("DELETE", f"/subscriptions/{old['id']}")
        body = json.dumps({"value": [{
            "subscriptionId": old["id"], "clientState": old["clientState"],
            "subscriptionExpirationDateTime": old["expirationDateTime"],
            "tenantId": "t", "lifecycleEvent": "subscriptionRemoved"}]}).encode()
        for _ in range(deliveries):
            await inbox.receive(body)
            tally.replays += 1
        messages = []
        while (delivery := rq.receive(conn, config.NOTIFY_QUEUE_NAME)) is not None:
            rq.complete(conn, delivery, config.NOTIFY_QUEUE_NAME)
            if json.loads(delivery.message.get_body())["kind"] == inbox.RECREATE:
                messages.append(delivery.message)
        await asyncio.gather(*(inbox.work(m.get_body()) for m in messages))
        at_graph = world.sim.graph("GET", "/subscriptions").json()["value"]
        async with store_mod.open_store(connection_string=conn) as store:
            stored = {r.subscription_id for r in (await store.subscriptions()).values()}
        if {s["id"] for s in at_graph} != stored or len(at_graph) != 2:
            tally.problem("wrong", f"after {deliveries} deliveries: {len(at_graph)} "
                          f"subscriptions at Graph, {len(stored)} stored")
