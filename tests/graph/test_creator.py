"""`shared.graph.creator` against the Graph simulator over real HTTP: look up, POST, group
add, in `$batch`; a user found by UPN is never created twice."""

from __future__ import annotations

import string

import pytest

from shared.graph import client as graph_client
from shared.graph import creator
from shared.reconcile import model
from tests.graph.conftest import G_HR, uid
from tests.support.simulator import RunningSimulator


def create(n: int, upn: str, entra_id: str | None = None) -> model.Change:
    return model.Change(model.ENTRA_CREATE, "R9", model.ENTRA_CREATE, f"u-{n}", entra_id, {},
                        {"accountEnabled": True, "displayName": f"New {n}",
                         "userPrincipalName": upn, "mailNickname": upn.split("@")[0]})


def members(sim: RunningSimulator, group: str = G_HR) -> list[str]:
    body = sim.graph("GET", f"/groups/{group}/members?$select=id").json()
    return [m["id"] for m in body["value"]]


def test_passwords_are_random_long_and_use_every_class() -> None:
    made = {creator.new_password() for _ in range(200)}
    assert len(made) == 200
    for password in made:
        assert len(password) >= 16
        assert {any(c in cls for c in password) for cls in creator.PASSWORD_CLASSES} == {True}
        assert set(password) <= set(string.ascii_letters + string.digits + creator.SYMBOLS)
    with pytest.raises(ValueError, match="at least 4"):
        creator.new_password(3)


async def test_creates_adds_to_the_group_and_finds_what_exists(
    sim: RunningSimulator, client: graph_client.GraphClient,
) -> None:
    fresh = create(1, "new.one@contoso.com")
    existing = create(2, "USER5@contoso.com")  # its POST's answer was lost, say
    result = await creator.create_users(client, [fresh, existing], G_HR)
    assert not result.failed and result.errors == ()
    created = dict((c.user_id, e) for c, e in result.created)
    assert created["u-2"] == uid(5)  # found by UPN, not made again
    assert result.posts == 1 and sim.requests()["byEndpoint"]["POST /users"] == 1
    assert {created["u-1"], uid(5)} <= set(members(sim))
    # The batches: one lookup, one POST, one group add.
    assert result.batches == 3

    again = await creator.create_users(client, [fresh], G_HR)  # a rerun: no second user
    assert [e for _, e in again.created] == [created["u-1"]] and again.posts == 0


async def test_a_group_add_that_fails_leaves_the_user_unlinked_for_the_next_run(
    sim: RunningSimulator, client: graph_client.GraphClient,
) -> None:
    sim.set_faults("/groups/{id}/members/$ref", 500, method="POST", times=-1)
    result = await creator.create_users(client, [create(1, "new.two@contoso.com")], G_HR)
    assert result.created == () and [c.user_id for c in result.failed] == ["u-1"]
    (error,) = result.errors
    assert (error["reason"], error["userId"]) == ("entra_write_failed", "u-1")
    assert "new.two@contoso.com" in error["message"]
    sim.clear_faults()
    again = await creator.create_users(client, [create(1, "new.two@contoso.com")], G_HR)
    (done,) = again.created
    assert again.posts == 0 and done[1] in members(sim)


async def test_a_upn_graph_would_refuse_is_never_sent_the_others_are_created(
    sim: RunningSimulator, client: graph_client.GraphClient,
) -> None:
    bad = create(1, "jörg+hr@contoso.com")
    good = create(2, "o'brien@contoso.com")
    result = await creator.create_users(client, [bad, good], G_HR)
    assert [c.user_id for c, _ in result.created] == ["u-2"]
    assert result.failed == (bad,) and result.posts == 1
    (error,) = result.errors
    assert (error["reason"], error["userId"], error["temporary"]) == ("upn_invalid", "u-1",
                                                                      False)
    assert "'+'" in error["message"] and "'ö'" in error["message"]
    lookups = [e for e in sim.http.get("/_sim/requests?log=1").json()["log"]
               if e["template"] == "/users" and e["method"] == "GET"]
    assert len(lookups) == 1  # only the good UPN was even looked up


async def test_creates_throttled_past_the_deadline_are_deferred_not_failed(
    sim: RunningSimulator, client: graph_client.GraphClient,
) -> None:
    sim.set_faults("/users", 429, method="POST", times=-1, retry_after=0)

    async def no_wait(seconds: float) -> None:
        return None

    result = await creator.create_users(client, [create(1, "new.three@contoso.com")], G_HR,
                                        sleep=no_wait)
    assert result.created == () and result.errors == ()
    assert [c.user_id for c in result.deferred] == ["u-1"] == [c.user_id
                                                                for c in result.failed]
