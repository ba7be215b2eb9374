"""What the feature benchmarks (`bench.writeback`, `bench.writeback_create`,
`bench.calendars`, `bench.event_push`, `bench.photos`) share: their arguments, the
tenant and Emply state they build on, Azurite and the Graph simulator, one measured
sync in a fresh process, and the end of the report.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bench import generate
from bench.run import OUT, Simulator, machine, sync_in_child
from tests.support.azurite import start_azurite

GROUP = generate.group_id(1)
BATCH = 20
"""Graph's limit of requests in one `$batch`."""
BATCH_ENDPOINT = "POST /$batch"
ROLES = [{"id": "employee", "name": "Employee", "administrator": False}]


def parse_args(module: str, doc: str | None, *, users: int, out: str,
               argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {module}", description=doc)
    parser.add_argument("--users", type=int, default=users)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--out", default=str(OUT / out))
    return parser.parse_args(argv)


def tenant(people: list[dict[str, Any]]) -> dict[str, Any]:
    """The bench tenant holding `people`, all members of the configured group."""
    return {
        "organization": {"id": generate.TENANT_ID, "displayName": "Bench",
                         "onPremisesSyncEnabled": False,
                         "verifiedDomains": [{"name": generate.DOMAIN, "isDefault": True}]},
        "users": people,
        "groups": [{"id": GROUP, "displayName": "Everyone",
                    "members": [p["id"] for p in people]}],
    }


def linked_user(i: int, person: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """Emply user `u-i`, active and linked to the Entra user `person`."""
    return {"id": f"u-{i}", "username": person["userPrincipalName"],
            "email": person["mail"], "displayName": person["displayName"],
            "status": "active", "roles": ["employee"], **extra, "source": "entra",
            "entraId": person["id"], "tenantId": generate.TENANT_ID,
            "syncGroups": [GROUP], "linkedDomain": generate.DOMAIN}


def calendar_tenant(users: int) -> dict[str, Any]:
    """`users` people, each with one calendar holding one meeting tomorrow (the mailbox
    benches' tenant)."""
    day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    return tenant([{**generate.entra_user(i), "calendars": [{
        "id": f"cal-{i}", "name": "Calendar", "isDefaultCalendar": True, "canEdit": True,
        "events": [{"id": f"ev-{i}", "subject": "Meeting", "showAs": "busy",
                    "start": {"dateTime": f"{day}T09:00:00", "timeZone": "UTC"},
                    "end": {"dateTime": f"{day}T09:30:00", "timeZone": "UTC"}}]}]}
        for i in range(users)])


def calendar_emply(entra: dict[str, Any]) -> dict[str, Any]:
    """The Emply side of `calendar_tenant`: everyone linked, calendar sync on."""
    return {"settings": settings(calendarSync=True), "roles": ROLES,
            "users": [linked_user(i, p) for i, p in enumerate(entra["users"])]}


def settings(**changed: Any) -> dict[str, Any]:
    """The integration settings: the group as employees, every feature off but those
    in `changed`."""
    return {"enabled": True, "tenantId": generate.TENANT_ID,
            "groups": [{"groupId": GROUP, "roleId": "employee"}], "syncRoles": True,
            "defaultRoleId": "employee", "allowedDomains": [],
            "writeBack": {"create": False, "update": False, "delete": False},
            "calendarSync": False, "photoSync": False, **changed}


async def import_doc(storage: str, doc: dict[str, Any], *, replace: bool = True) -> None:
    from shared import store as store_mod

    async with store_mod.open_store(connection_string=storage) as store:
        await store.import_document(doc, replace=replace)


def start(module: str, args: argparse.Namespace, entra: dict[str, Any], tenant_name: str
          ) -> tuple[Path, Path, dict[str, Any]]:
    """The output file, the tenant written for the simulator, and the results begun."""
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tenant_file = out.parent / tenant_name
    tenant_file.write_text(json.dumps(entra))
    results: dict[str, Any] = {
        "command": f"python -m {module} --users {args.users} "
                   f"--latency-ms {args.latency_ms:g}",
        "machine": machine()}
    return out, tenant_file, results


@contextlib.contextmanager
def services(tenant_file: Path, latency_ms: float) -> Iterator[tuple[Simulator, str]]:
    """Azurite and the Graph simulator (serving `tenant_file`): the simulator and the
    storage connection string."""
    with start_azurite(timeout=60) as azurite:
        sim = Simulator(tenant_file, latency_ms)
        try:
            yield sim, azurite.connection_string
        finally:
            sim.stop()


def sync(name: str, sim: Simulator, storage: str) -> tuple[dict[str, Any], dict[str, int]]:
    """One sync in a fresh process: its figures and the Graph requests by endpoint."""
    sim.reset()
    print(f"[bench] {name} ...", flush=True)
    result = sync_in_child(storage, sim.url)
    counts: dict[str, int] = sim.requests()["byEndpoint"]
    return result, counts


def measure(name: str, sim: Simulator, storage: str,
            figures: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`sync`, with the requests (`graphRequests`), the `$batch` requests (`batches`),
    and per key of `figures` the requests to its endpoint (items inside batches count)."""
    result, counts = sync(name, sim, storage)
    result["graphRequests"] = counts
    result["batches"] = counts.get(BATCH_ENDPOINT, 0)
    for key, endpoint in (figures or {}).items():
        result[key] = counts.get(endpoint, 0)
    named = "".join(f"{result[key]} {endpoint}, " for key, endpoint in (figures or {}).items())
    print(f"[bench] {name}: {result['wallSeconds']} s, {result['cpuSeconds']} s CPU, "
          f"{result['batches']} $batch, {named}counts {result['counts']}", flush=True)
    return result


def finish(out: Path, results: dict[str, Any], *, width: int = 18) -> int:
    """Writes the results, prints the checks and where the results are; 0 when every
    check holds."""
    out.write_text(json.dumps(results, indent=2))
    print(f"  {'checks':<{width}}{results['checks']}")
    print(f"\nwritten {out}")
    return 0 if all(results["checks"].values()) else 1
