"""`make demo`: the main job end to end on local Azurite and the Graph simulator.

Starts both on free loopback ports, imports the sample Emply state, syncs,
changes the tenant (Grady Archie leaves the Employee group, Pradeep Gupta joins
Sales, a nested group of Employee), syncs again (which also adds Megan's two
calendars: calendar sync is on, and creates Emply's interview in her M365 calendar,
showing its graphId), explains the leaver and Megan's calendars and photo (copied
from Entra by the first sync: photo sync is on, R16), then puts one event in Megan's
default calendar and syncs a third time, which mirrors it into Emply (R14), and stops
what it started. Everything goes through the real `emply-sync` command.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.azurite import start_azurite  # noqa: E402

DEMO = ROOT / "demo"


def emply_sync(*args: str, env: dict[str, str], show: bool = True) -> str:
    if show:
        print(f"\n$ emply-sync {' '.join(args)}", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        env=env, cwd=ROOT, text=True, capture_output=True, check=False,
    )
    if show:
        print(done.stdout.rstrip())
    if done.stderr.strip():
        print(done.stderr.rstrip(), file=sys.stderr)
    if done.returncode != 0:
        raise SystemExit(f"emply-sync {args[0]} exited with {done.returncode}")
    return done.stdout


def start_simulator(tenant: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "simulator", "--tenant", str(tenant),
         "--port", "0", "--latency-ms", "5"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if "listening on" not in line:
        proc.terminate()
        raise SystemExit(f"the Graph simulator did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[1]


def with_event(tenant: Path) -> bytes:
    """`tenant` with one meeting tomorrow in Megan's default calendar."""
    doc = json.loads(tenant.read_text())
    day = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    for user in doc["users"]:
        for calendar in user.get("calendars") or ():
            if user["userPrincipalName"].startswith("megan.") and calendar["isDefaultCalendar"]:
                calendar["events"] = [{
                    "id": "AAMkAGMeganEvent1", "subject": "Onboarding review",
                    "start": {"dateTime": f"{day}T09:00:00", "timeZone": "UTC"},
                    "end": {"dateTime": f"{day}T09:30:00", "timeZone": "UTC"},
                    "showAs": "busy", "sensitivity": "normal"}]
    return json.dumps(doc).encode()


def put_tenant(graph_url: str, tenant: Path | bytes) -> None:
    base = graph_url.rsplit("/v1.0", 1)[0]
    request = urllib.request.Request(
        f"{base}/_sim/tenant", data=tenant if isinstance(tenant, bytes) else tenant.read_bytes(),
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:  # loopback only
        response.read()


def main() -> None:
    with start_azurite() as azurite:
        simulator, graph_url = start_simulator(DEMO / "tenant.json")
        try:
            env = {**os.environ, "EMPLY_SYNC_STORAGE": azurite.connection_string,
                   "EMPLY_SYNC_GRAPH_URL": graph_url}
            print(f"Azurite and the Graph simulator ({graph_url}) are running.")
            emply_sync("emply", "import", str(DEMO / "emply.json"), "--replace", env=env)
            print("\n=== Run 1: the first sync ===")
            emply_sync("sync", env=env)
            first = json.loads(emply_sync("runs", "--limit", "1", "--json", env=env,
                                          show=False))[0]["counts"]
            if first.get("photo_set") != 1:
                raise SystemExit(f"Megan's photo was not copied by the first run: {first}")
            exported = json.loads(emply_sync("emply", "export", env=env, show=False))
            megan = next(u for u in exported["users"] if u["id"] == "u-megan")
            print("\n=== Megan's photo, copied from Entra to the `photos` container (R16) ===")
            print(json.dumps(megan["photo"], indent=2))
            print("\n=== The tenant changes: Grady Archie leaves Employee, "
                  "Pradeep Gupta joins Sales ===")
            put_tenant(graph_url, DEMO / "tenant-after.json")
            print("\n=== Run 2: the next sync ===")
            emply_sync("sync", env=env)
            print("\n=== Why was Grady deactivated? ===")
            emply_sync("explain", "grady.archie@contoso.com", env=env)
            print("\n=== Megan's calendars (R13) and photo (R16) ===")
            emply_sync("explain", "megan.jordan@contoso.com", env=env)
            emply_sync("runs", env=env)
            runs = json.loads(emply_sync("runs", "--limit", "1", "--json", env=env, show=False))
            counts = runs[0]["counts"]
            if counts != {"deactivate_user": 1, "create_user": 1, "calendar_add": 2,
                          "event_push": 1}:
                raise SystemExit(f"unexpected second run: {counts}")
            print("\n=== Emply's interview, pushed to Megan's M365 calendar (R15) ===")
            exported = json.loads(emply_sync("emply", "export", env=env, show=False))
            (pushed,) = exported["outboundEvents"]
            print(json.dumps({k: pushed[k] for k in ("id", "subject", "status", "graphId")},
                             indent=2))
            if pushed["status"] != "created" or not pushed["graphId"]:
                raise SystemExit(f"the outbound event was not pushed: {pushed}")
            print("\n=== A meeting is booked in Megan's calendar; Run 3 mirrors it (R14) ===")
            put_tenant(graph_url, with_event(DEMO / "tenant-after.json"))
            emply_sync("sync", env=env)
            events = json.loads(emply_sync("emply", "export", env=env, show=False))["events"]
            print(json.dumps(events, indent=2))
            runs = json.loads(emply_sync("runs", "--limit", "1", "--json", env=env, show=False))
            if runs[0]["counts"] != {"events_mirror": 1} or len(events) != 1:
                raise SystemExit(f"unexpected third run: {runs[0]['counts']}, {events}")
        finally:
            simulator.terminate()
            simulator.wait(timeout=10)
    print("\nDemo finished: Azurite and the simulator are stopped.")


if __name__ == "__main__":
    main()
