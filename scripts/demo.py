"""`make demo`: the main job end to end on local Azurite and the Graph simulator.

Starts both on free loopback ports, imports the sample Emply state, syncs,
changes the tenant (Grady Archie leaves the Employee group, Pradeep Gupta joins
Sales, a nested group of Employee), syncs again (which also adds Megan's two
calendars: calendar sync is on, and creates Emply's interview in her M365 calendar,
showing its graphId), explains the leaver and Megan's calendars and photo (copied
from Entra by the first sync: photo sync is on, R16). Then Emply moves the interview to
tomorrow while a meeting is booked in Megan's default calendar: a third sync moves her
M365 event (R15) and mirrors the meeting into Emply, but not the interview (R14: shown
once). Emply cancels the interview: a fourth sync cancels it in M365 and Outlook tells
the candidate. Then it stops what it started. Everything goes through the real
`emply-sync` command.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

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


def with_meeting(graph_url: str) -> bytes:
    """The simulator's tenant now (Megan's pushed interview in it) with one meeting
    tomorrow in her default calendar."""
    doc = json.loads(_sim(graph_url, "GET", "/_sim/tenant"))
    day = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    for user in doc["users"]:
        for calendar in user.get("calendars") or ():
            if user["userPrincipalName"].startswith("megan.") and calendar["isDefaultCalendar"]:
                calendar["events"].append({
                    "id": "AAMkAGMeganEvent1", "subject": "Onboarding review",
                    "start": {"dateTime": f"{day}T09:00:00", "timeZone": "UTC"},
                    "end": {"dateTime": f"{day}T09:30:00", "timeZone": "UTC"},
                    "showAs": "busy", "sensitivity": "normal"})
    return json.dumps(doc).encode()


def _sim(graph_url: str, method: str, path: str, body: bytes | None = None) -> bytes:
    """A control request to the simulator (loopback only)."""
    base = graph_url.rsplit("/v1.0", 1)[0]
    request = urllib.request.Request(f"{base}{path}", data=body, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:  # loopback only
        data: bytes = response.read()
    return data


def megans_m365_events(graph_url: str) -> list[dict[str, Any]]:
    doc = json.loads(_sim(graph_url, "GET", "/_sim/tenant"))
    megan = next(u for u in doc["users"] if u["userPrincipalName"].startswith("megan."))
    return [{"subject": e["subject"], "start": e["start"]["dateTime"]}
            for c in megan["calendars"] if c["isDefaultCalendar"] for e in c["events"]]


def send_interview(env: dict[str, str], tmp: Path, **changed: Any) -> None:
    """Emply sends the interview again, changed (its own fields only: what the sync knows
    of its M365 copy is kept)."""
    doc = json.loads((DEMO / "emply.json").read_text())
    (interview,) = doc["outboundEvents"]
    path = tmp / "interview.json"
    path.write_text(json.dumps({"outboundEvents": [{**interview, **changed}]}))
    emply_sync("emply", "import", str(path), env=env)


def last_counts(env: dict[str, str]) -> dict[str, int]:
    runs = json.loads(emply_sync("runs", "--limit", "1", "--json", env=env, show=False))
    counts: dict[str, int] = runs[0]["counts"]
    return counts


def put_tenant(graph_url: str, tenant: Path | bytes) -> None:
    _sim(graph_url, "PUT", "/_sim/tenant",
         tenant if isinstance(tenant, bytes) else tenant.read_bytes())


def follow_the_interview(env: dict[str, str], graph_url: str, tmp: Path) -> None:
    """Runs 3 and 4: the interview moved, then cancelled, in Emply (R15); Emply's events
    show it once (R14)."""
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    print("\n=== Emply moves the interview to tomorrow 14:00, and a meeting is booked in "
          "Megan's calendar; Run 3 moves her M365 event and mirrors the meeting ===")
    put_tenant(graph_url, with_meeting(graph_url))
    send_interview(env, tmp, start=f"{tomorrow}T14:00:00Z", end=f"{tomorrow}T15:00:00Z")
    emply_sync("sync", env=env)
    in_m365 = megans_m365_events(graph_url)
    print("Megan's M365 calendar:", json.dumps(in_m365, indent=2))
    events = json.loads(emply_sync("emply", "export", env=env, show=False))["events"]
    print("Emply's mirrored events (the interview is Emply's own: shown once):",
          json.dumps([e["subject"] for e in events]))
    counts = last_counts(env)
    if counts != {"events_mirror": 1, "event_push": 1} or [e["subject"] for e in events] \
            != ["Onboarding review"] or {"subject": "Interview: Lee Gu",
                                         "start": f"{tomorrow}T14:00:00"} not in in_m365:
        raise SystemExit(f"unexpected third run: {counts}, {events}, {in_m365}")
    print("\n=== Emply cancels the interview; Run 4 cancels it in M365 (Outlook tells "
          "Lee Gu) ===")
    send_interview(env, tmp, start=f"{tomorrow}T14:00:00Z", end=f"{tomorrow}T15:00:00Z",
                   cancelled=True)
    emply_sync("sync", env=env)
    (interview,) = json.loads(emply_sync("emply", "export", env=env,
                                         show=False))["outboundEvents"]
    print(json.dumps({k: interview[k] for k in ("id", "status", "graphId")}, indent=2))
    mail = json.loads(_sim(graph_url, "GET", "/_sim/mail"))["mail"]
    print("What Outlook sent:", json.dumps([(m["kind"], m["to"]) for m in mail]))
    if interview["status"] != "cancelled" or last_counts(env) != {"event_push": 1} \
            or [m["kind"] for m in mail] != ["invitation", "update", "cancellation"] \
            or any(e["subject"] == "Interview: Lee Gu" for e in megans_m365_events(graph_url)):
        raise SystemExit(f"unexpected fourth run: {interview}, {mail}")


def main() -> None:
    with start_azurite() as azurite, tempfile.TemporaryDirectory() as tmp:
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
            follow_the_interview(env, graph_url, Path(tmp))
        finally:
            simulator.terminate()
            simulator.wait(timeout=10)
    print("\nDemo finished: Azurite and the simulator are stopped.")


if __name__ == "__main__":
    main()
