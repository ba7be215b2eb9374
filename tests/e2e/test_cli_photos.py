"""R16 through `emply-sync`, against Azurite (blobs in `photos`) and the simulator.

FAQ ("How does the synchronization of profile pictures from Microsoft Entra ID to Emply
work?"): "The profile picture can only synchronize from Microsoft Entra ID to Emply on
users that are not connected to an employee, as it is the employee who controls the
user, once they are connected." And ("Is it possible to have the profile pictures
synchronize between Emply and Microsoft Entra ID?"): "No, it is not possible."

Megan has no employee profile: her Entra photo is copied, changed, removed. Ray has one:
his photo is never read. Every Graph request is counted by the simulator, so "an
unchanged photo is never downloaded" is a count, not a hope.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import hashlib
import json
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError
from azure.storage.blob import BlobServiceClient

from shared import config
from shared.app import boundary
from shared.reconcile import photo_slices
from shared.run import pipeline
from shared.store import photo_blobs
from tests.e2e import tenants as t
from tests.e2e.test_cli_roles import MEGAN, RAY, faq_state

JPEG = b"\xff\xd8\xff\xe0 megan at her desk"
PNG = b"\x89PNG megan on holiday"
DAILY = "0 0 3 * * *"
"""One run a day: one slot, every user checked every run."""


def with_photo(user: dict[str, Any], data: bytes | None, kind: str = "image/jpeg"
               ) -> dict[str, Any]:
    user = copy.deepcopy(user)
    user.pop("photo", None)
    if data is not None:
        user["photo"] = {"contentType": kind, "base64": base64.b64encode(data).decode()}
    return user


def tenant(megan: bytes | None = JPEG, kind: str = "image/jpeg",
           extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    users = [with_photo(RAY, b"\xff\xd8 ray"), with_photo(MEGAN, megan, kind), *(extra or [])]
    ids = [u["id"] for u in users]
    return t.tenant(users, {t.G_EMPLOYEE: ids, t.G_HR: [RAY["id"], MEGAN["id"]]})


def photo_requests(world: Any) -> dict[str, int]:
    by: dict[str, int] = world.sim.requests()["byEndpoint"]
    return {k.split(" ", 1)[1]: n for k, n in by.items() if "/photo" in k}


def photo_paths(world: Any) -> list[str]:
    log = world.sim.http.get("/_sim/requests", params={"log": "1"}).json()["log"]
    return sorted(e["path"] for e in log if e["path"].endswith("/photo"))


def blob(world: Any, user_id: str) -> tuple[bytes, str] | None:
    container = BlobServiceClient.from_connection_string(
        world.azurite.connection_string).get_container_client("photos")
    client = container.get_blob_client(user_id)
    if not client.exists():
        return None
    download = client.download_blob()
    return download.readall(), download.properties.content_settings.content_type


def photo_world(make_world: Any, monkeypatch: pytest.MonkeyPatch, schedule: str = DAILY,
                **settings: Any) -> Any:
    monkeypatch.setenv(config.SYNC_SCHEDULE, schedule)
    world = make_world(tenant())
    state = faq_state()
    state["settings"].update(photoSync=True, **settings)
    world.import_state(state)
    return world


def test_a_photo_is_copied_changed_and_removed_never_for_an_employee_profile(
    make_world: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = photo_world(make_world, monkeypatch)
    dry = world.sync("--dry-run")
    assert blob(world, "u-megan") is None  # a dry run writes nothing
    world.sim.reset_requests()
    first = world.sync()
    assert dry["counts"] == first["counts"] == {"link_user": 2, "photo_set": 1}
    assert first["skips"]["employee_profile_controls_photo"] == 1  # Ray, once
    change = next(c for c in first["changes"] if c["kind"] == "photo_set")
    assert (change["userId"], change["reason"], change["rule"]) == (
        "u-megan", "entra_photo_new", "R16")
    # Megan (linked this run) is checked; Ray's photo is never even looked at.
    assert photo_requests(world) == {"/users/{id}/photo": 1, "/users/{id}/photo/$value": 1}
    assert photo_paths(world) == [f"/users/{MEGAN['id']}/photo"]
    users = world.users()
    recorded = users["megan.jordan@contoso.com"]["photo"]
    assert recorded["sha256"] == hashlib.sha256(JPEG).hexdigest()
    assert recorded["contentType"] == "image/jpeg" and recorded["etag"]
    assert recorded["updatedAt"].endswith("Z")
    assert users["ray.ross@contoso.com"]["photo"] is None
    assert blob(world, "u-megan") == (JPEG, "image/jpeg")
    assert blob(world, "u-ray") is None

    # Unchanged: the metadata is read, the bytes are not.
    world.sim.reset_requests()
    again = world.sync()
    assert again["counts"] == {}
    assert photo_requests(world) == {"/users/{id}/photo": 1}

    # Changed in Entra: a new ETag, so the new bytes are downloaded and copied.
    world.sim.put_tenant(tenant(PNG, "image/png"))
    world.sim.reset_requests()
    changed = world.sync()
    assert changed["counts"] == {"photo_set": 1}
    assert changed["changes"][0]["reason"] == "entra_photo_changed"
    assert photo_requests(world) == {"/users/{id}/photo": 1, "/users/{id}/photo/$value": 1}
    assert blob(world, "u-megan") == (PNG, "image/png")
    assert world.users()["megan.jordan@contoso.com"]["photo"]["sha256"] == \
        hashlib.sha256(PNG).hexdigest()

    # Removed in Entra: removed in Emply, blob and field.
    world.sim.put_tenant(tenant(None))
    removed = world.sync()
    assert removed["counts"] == {"photo_clear": 1}
    assert removed["changes"][0]["reason"] == "entra_photo_removed"
    assert blob(world, "u-megan") is None
    megan = world.users()["megan.jordan@contoso.com"]
    assert megan["photo"] is None
    assert megan["lastChange"]["kind"] == "photo_clear"
    assert world.sync()["counts"] == {}

    # Never Emply → Entra: nothing was written to Graph at all.
    writes = {k: n for k, n in world.sim.requests()["byEndpoint"].items()
              if k.split(" ")[0] in ("PATCH", "PUT", "DELETE")}
    assert writes == {}


def test_explain_says_why_a_photo_is_or_is_not_copied(
    make_world: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = photo_world(make_world, monkeypatch)
    world.sync()
    megan = json.loads(world.ok("explain", "u-megan", "--json"))
    assert any(w.startswith("photo copied from Entra (sha256 "
                            + hashlib.sha256(JPEG).hexdigest()) for w in megan["why"])
    assert megan["photo"]["sha256"] == hashlib.sha256(JPEG).hexdigest()
    ray = json.loads(world.ok("explain", "u-ray", "--json"))
    words = [w for w in ray["why"] if w.startswith("photo not copied")]
    assert words == ["photo not copied (employee_profile_controls_photo): the user is "
                     "connected to employee e-ray: The profile picture can only synchronize "
                     "from Microsoft Entra ID to Emply on users that are not connected to an "
                     "employee, as it is the employee who controls the user, once they are "
                     "connected."]
    assert any(f["question"].startswith("How does the synchronization of profile pictures")
               for f in ray["faq"])

    world.sim.put_tenant(tenant(None))
    removed = json.loads(world.ok("explain", "u-megan", "--json"))
    assert "photo removed next run (entra_photo_removed): the Entra user has no profile " \
           "photo any more" in removed["why"]
    assert [c["kind"] for c in removed["nextRun"]["changes"]] == ["photo_clear"]


@pytest.mark.parametrize(("settings", "reason"), [
    ({"photoSync": False}, "photo_sync_off"),
    ({"enabled": False}, "integration_disabled"),
])
def test_off_or_disabled_nothing_more_is_copied_and_copies_stay(
    make_world: Any, monkeypatch: pytest.MonkeyPatch, settings: dict[str, Any], reason: str,
) -> None:
    world = photo_world(make_world, monkeypatch)
    world.sync()
    doc = world.export()
    doc["settings"].update(settings)
    path = world.tmp / "off.json"
    path.write_text(json.dumps(doc))
    world.ok("emply", "import", str(path), "--replace")
    world.sim.put_tenant(tenant(PNG, "image/png"))
    world.sim.reset_requests()
    report = world.sync()
    assert "photo_set" not in report["counts"] and "photo_clear" not in report["counts"]
    assert photo_requests(world) == {}
    assert blob(world, "u-megan") == (JPEG, "image/jpeg")  # the copy made stays
    assert world.users()["megan.jordan@contoso.com"]["photo"]["sha256"] == \
        hashlib.sha256(JPEG).hexdigest()
    explained = json.loads(world.ok("explain", "u-megan", "--json"))
    assert any(w.startswith(f"photo not copied ({reason})") for w in explained["why"])


def _slot_pair(slots: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two more Entra users whose Emply ids fall in different slots."""
    found: dict[int, dict[str, Any]] = {}
    for n in range(3, 60):
        user = t.entra_user(n, f"Extra Person{n}")
        slot = photo_slices.slot_of(f"u-extra{n}", slots)
        found.setdefault(slot, user | {"emplyId": f"u-extra{n}"})
        if len(found) == 2:
            break
    first, second = found.values()
    return first, second


def test_a_run_checks_its_slice_and_every_user_it_linked(
    make_world: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    schedule = "0 0 0,6,12,18 * * *"  # 4 runs a day: 2 slots
    assert photo_slices.slots_for(schedule) == 2
    a, b = _slot_pair(2)
    extra = [{k: v for k, v in u.items() if k != "emplyId"} for u in (a, b)]
    monkeypatch.setenv(config.SYNC_SCHEDULE, schedule)
    world = make_world(tenant(extra=[with_photo(u, JPEG) for u in extra]))
    state = faq_state()
    state["settings"]["photoSync"] = True
    state["users"] += [{"id": u["emplyId"], "username": u["userPrincipalName"],
                        "email": u["mail"], "roles": ["employee"]} for u in (a, b)]
    world.import_state(state)
    first = world.sync()
    assert first["counts"]["photo_set"] == 3  # all linked this run: all checked
    for _attempt in range(2):  # again only if the run crossed a 6-hour tick
        slot = photo_slices.current_slot(schedule, dt.datetime.now(dt.UTC))
        world.sim.reset_requests()
        assert world.sync()["counts"] == {}
        if photo_slices.current_slot(schedule, dt.datetime.now(dt.UTC)) == slot:
            break
    due = sorted(f"/users/{u['id']}/photo" for u, emply_id in
                 ((MEGAN, "u-megan"), (a, a["emplyId"]), (b, b["emplyId"]))
                 if photo_slices.slot_of(emply_id, 2) == slot)
    assert photo_paths(world) == due
    assert 1 <= len(due) <= 2  # a and b are in different slots: one of them is not read


class RefusingBlobs(photo_blobs.MemoryPhotoBlobs):
    """Blob Storage refusing the write: the user's field must not name a blob."""

    async def put(self, user_id: str, data: bytes, content_type: str) -> None:
        raise ServiceRequestError("connection reset")


async def test_the_field_is_written_only_after_the_blob(
    make_world: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = photo_world(make_world, monkeypatch)
    async with boundary.open_deps() as deps:
        deps.photos = RefusingBlobs()
        failed = await pipeline.run_sync(deps, trigger="cli")
    assert failed["status"] == "failed"
    assert failed["errors"][0]["reason"] == "storage_unavailable"
    assert world.users()["megan.jordan@contoso.com"]["photo"] is None
    async with boundary.open_deps() as deps:
        deps.photos = fake = photo_blobs.MemoryPhotoBlobs()
        report = await pipeline.run_sync(deps, trigger="cli")
    assert report["counts"]["photo_set"] == 1  # planned again, now written
    assert fake.blobs == {"u-megan": (JPEG, "image/jpeg")}
    assert world.users()["megan.jordan@contoso.com"]["photo"]["sha256"] == \
        hashlib.sha256(JPEG).hexdigest()
