"""emply-sync: the command line (README, "Command line").

Exit codes: 0 succeeded, needs_approval or disabled (R17); 1 the run failed (or storage/Graph
failed: one line `emply-sync: <reason>: <what>` on stderr, `shared.errors`' reason
codes); 2 bad input, usage or no settings; 3 another run is in progress.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from shared import config, errors, telemetry
from shared.app import boundary, emply_import, hybrid_check, user_sync
from shared.emply import file as emply_file
from shared.emply.document import DocumentError

SHOWN_CHANGES = 40


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emply-sync", description="Keep Emply in step with Microsoft Entra ID."
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--storage",
        metavar="CONN",
        help=f"storage connection string (default: ${config.STORAGE_CONNECTION_STRING}, "
        "else identity-based endpoints, else local Azurite)",
    )
    common.add_argument(
        "--graph-url",
        metavar="URL",
        help=f"Microsoft Graph base URL (default: ${config.GRAPH_URL} or "
        f"{config.DEFAULT_GRAPH_URL}); a loopback URL uses the simulator's token",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sync = sub.add_parser("sync", parents=[common], help="run one sync")
    sync.add_argument("--dry-run", action="store_true", help="plan only; change nothing")
    sync.add_argument("--approve-deletions", type=_approval, metavar="N:DIGEST",
                      help="approve the Entra deletions (writeBack.delete) held by the guard: "
                      "their count and digest, as the held run's report shows them")
    sync.add_argument("--approve-deactivations", type=_approval, metavar="N[:DIGEST]",
                      help="approve the deactivations held by the guard: their count and the "
                      "digest of the held set the report shows (N:DIGEST, or DIGEST); a "
                      "count alone approves only the set the last run held")
    sync.add_argument("--user", metavar="KEY",
                      help="one user now: an Emply user id, username or e-mail, or an Entra "
                      "object id, UPN or mail; read from Graph directly, planned and applied "
                      "for that user alone; prints the steps (scope, match, changes, errors, "
                      "FAQ answer)")
    sync.add_argument("--json", action="store_true", help="print the run report as JSON")

    expl = sub.add_parser("explain", parents=[common], help="why a user is in its state (R18)")
    expl.add_argument("user", help="user id, username or e-mail (or an employee's e-mail, or "
                      "an Entra user's object id, UPN or mail)")
    expl.add_argument("--json", action="store_true")

    runs = sub.add_parser("runs", parents=[common], help="run history")
    runs.add_argument("run_id", nargs="?", help="show one run's full report")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--json", action="store_true")

    emply = sub.add_parser("emply", help="the Emply side in and out")
    emply_sub = emply.add_subparsers(dest="emply_command", required=True)
    imp = emply_sub.add_parser("import", parents=[common], help="import an Emply state file")
    imp.add_argument("file")
    imp.add_argument("--replace", action="store_true",
                     help="clear the Emply side first (never the sync's own state)")
    emply_sub.add_parser("export", parents=[common], help="print the Emply side as JSON")

    sim = sub.add_parser("simulator", help="serve a tenant file as Graph v1.0 on loopback")
    sim.add_argument("--tenant", required=True, metavar="FILE")
    sim.add_argument("--port", type=int, default=0)
    sim.add_argument("--latency-ms", type=float, default=0)
    return parser


def _approval(text: str) -> boundary.Approval:
    try:
        return boundary.Approval.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "simulator":
        return _simulator(args)
    _quiet_logging()
    try:
        return _run(args)
    finally:
        telemetry.flush()  # the run record, when App Insights is configured


def _run(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_dispatch(args))
    except boundary.RunInProgress as exc:
        print(f"emply-sync: {exc}", file=sys.stderr)
        return 3
    except (
        DocumentError,
        boundary.NotConfigured,
        boundary.UserNotFound,
        boundary.AmbiguousUser,
        user_sync.BadKey,
    ) as exc:
        print(f"emply-sync: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        failure = errors.classify(exc)
        if failure is None:
            raise  # a bug: its traceback is what a developer needs
        # Storage or Graph down or refusing: one clear line, no traceback.
        print(f"emply-sync: {failure.reason}: {failure.message}", file=sys.stderr)
        return 1


def _quiet_logging() -> None:
    """The command line speaks through stdout and stderr. Without a handler of its own,
    Python's last-resort handler would print every warning the libraries log (azure-core
    logs each retry of an unreachable endpoint, with its traceback) to stderr."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.NullHandler())


def _simulator(args: argparse.Namespace) -> int:
    """Development tooling: `graph_simulator` is a top-level package of the repository
    that the deployment package leaves out (.funcignore), so it is imported only here."""
    try:
        simulator = importlib.import_module("graph_simulator")
    except ModuleNotFoundError as exc:
        if exc.name != "graph_simulator":
            raise
        print("emply-sync simulator: the Graph simulator is development tooling and is not "
              "installed here (run it from a checkout of the repository after `make setup`)",
              file=sys.stderr)
        return 2
    try:
        simulator.serve(args.tenant, port=args.port, latency_ms=args.latency_ms)
    except (OSError, ValueError) as exc:
        print(f"emply-sync simulator: {exc}", file=sys.stderr)
        return 2
    return 0


async def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "sync" and args.user is not None:
        return await _sync_user(args)
    if args.command == "sync":
        report = await boundary.sync(
            trigger="cli",
            dry_run=args.dry_run,
            approve_deactivations=args.approve_deactivations,
            approve_deletions=args.approve_deletions,
            storage=args.storage,
            graph_url=args.graph_url,
        )
        if report.get("failedBeforeStart"):
            error = report["errors"][-1]
            print(f"emply-sync: {error['reason']}: {error['message']}", file=sys.stderr)
            if args.json:
                print(json.dumps(report, indent=2, default=list))
            return 1
        # default=list: a run's changes may come as its compressed change log.
        print(json.dumps(report, indent=2, default=list) if args.json
              else format_report(report))
        if report["status"] != "failed":
            return 0
        print(f"emply-sync: {failure_line(report)}", file=sys.stderr)
        return 1
    async with boundary.open_deps(storage=args.storage, graph_url=args.graph_url) as deps:
        if args.command == "explain":
            result = await boundary.explain_user(deps, args.user)
            print(json.dumps(result, indent=2) if args.json else format_explanation(result))
            return 0
        if args.command == "runs":
            return await _runs(deps, args)
        if args.command == "emply":
            return await _emply(deps, args)
    raise AssertionError(args.command)


async def _sync_user(args: argparse.Namespace) -> int:
    if args.approve_deactivations is not None or args.approve_deletions is not None:
        print("emply-sync: --user takes no approval: approve held changes with a full run "
              "(emply-sync sync --approve-deactivations N:DIGEST)", file=sys.stderr)
        return 2
    report = await boundary.sync_user(user_sync.check_key(args.user), dry_run=args.dry_run,
                                      storage=args.storage, graph_url=args.graph_url)
    if report.get("failedBeforeStart"):
        error = report["errors"][-1]
        print(f"emply-sync: {error['reason']}: {error['message']}", file=sys.stderr)
    print(json.dumps(report, indent=2) if args.json else format_user_report(report))
    return 1 if report["status"] == "failed" else 0


def format_user_report(report: dict[str, Any]) -> str:
    """An on-demand run: the run's line, then the user's steps and the FAQ answers."""
    lines = [format_report(report).splitlines()[0]]
    answer = report.get("user")
    if not isinstance(answer, dict):  # the run failed before it had an answer
        lines += [f"  ! {e['reason']}: {e['message']}" for e in report.get("errors") or []]
        return "\n".join(lines)
    lines.append(f"User {answer['key']}: {answer['outcome']}")
    for number, step in enumerate(answer["steps"], 1):
        title = {"match": "Match (R3)"}.get(step["step"], step["step"].capitalize())
        status = step["status"] if step["step"] != "errors" else (
            str(len(step["errors"])) if step["errors"] else "none")
        lines.append(f"  {number}. {title}: {status}")
        lines += [f"       {words}" for words in step.get("why") or []]
        if step["step"] == "changes":
            for change in (*step["changes"], *step["held"]):
                lines.append(f"       {change['kind']} ({change['rule']}, {change['reason']}): "
                             f"{change['message']}")
        if step["step"] == "errors":
            lines += [f"       ! {e['reason']}: {e['message']}" for e in step["errors"]]
    for faq in answer["faq"]:
        lines.append(f"FAQ: {faq['question']}\n  {faq['answer']}")
    return "\n".join(lines)


async def _runs(deps: boundary.Deps, args: argparse.Namespace) -> int:
    if args.run_id:
        report = await deps.store.get_run(args.run_id)
        if report is None:
            print(f"emply-sync: no run {args.run_id!r}", file=sys.stderr)
            return 2
        print(json.dumps(report, indent=2) if args.json else format_report(report))
        return 0
    runs = await deps.store.list_runs(args.limit)
    if args.json:
        print(json.dumps(runs, indent=2))
        return 0
    if not runs:
        print("no runs yet")
    for run in runs:
        counts = ", ".join(f"{k} {v}" for k, v in sorted((run.get("counts") or {}).items()))
        print(
            f"{run.get('startedAt')}  {run.get('runId')}  {run.get('trigger'):<6} "
            f"{run.get('status'):<15}{' (dry run)' if run.get('dryRun') else ''} "
            f"{counts or 'no changes'}"
        )
    return 0


async def _emply(deps: boundary.Deps, args: argparse.Namespace) -> int:
    if args.emply_command == "export":
        print(json.dumps(await deps.store.export_document(), indent=2))
        return 0
    try:
        with open(args.file, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        print(f"emply-sync: {exc}", file=sys.stderr)
        return 2
    try:
        doc = emply_file.parse_document_bytes(data, source=args.file)
        await hybrid_check.refuse_hybrid(deps.graph, doc)  # R10: before anything is written
        counts = await emply_import.import_emply(deps.store, doc, replace=args.replace,
                                                 source=args.file)
    except DocumentError as exc:
        print(f"emply-sync: {args.file} refused, nothing was written: {exc.report()}",
              file=sys.stderr)
        return 2
    except boundary.RunInProgress as exc:
        print(f"emply-sync: {exc}: nothing was imported; try again when it has finished",
              file=sys.stderr)
        return 3
    summary = ", ".join(f"{k} {v}" for k, v in counts.items())
    print(f"imported {args.file}{' (replaced)' if args.replace else ''}: {summary}")
    return 0


def failure_line(report: dict[str, Any]) -> str:
    """`<reason>: <what>` of a failed run: the error that failed it (a reason of
    `shared.errors`' taxonomy), else its last error."""
    reasons = errors.TEMPORARY_REASONS | errors.PERMANENT_REASONS | {errors.BUG_REASON}
    found = report.get("errors") or []
    error = next((e for e in reversed(found) if e.get("reason") in reasons),
                 found[-1] if found else {"reason": "run_failed", "message": "the run failed"})
    return f"{error.get('reason')}: {error.get('message')}"


def format_report(report: dict[str, Any]) -> str:
    lines = [
        f"Run {report['runId']} ({report['trigger']}): {report['status'].upper()}"
        + (" (dry run: nothing applied)" if report.get("dryRun") else "")
        + (f" in {report['durationMs'] / 1000:.1f} s" if report.get("durationMs") else "")
    ]
    read = report.get("entraRead")
    if report["status"] == "disabled":
        lines.append("  The integration is disabled (settings enabled: false): Entra not read, "
                     "no user created or changed, synced calendars and events removed")
    elif read:
        how = f"full read ({read['reason']})" if read.get("fullRead") else "delta"
        lines.append(
            f"  Entra read: {how}, {read['requests']} Graph requests, "
            f"{read['throttled']} throttled"
        )
    counts = report.get("counts") or {}
    lines.append(
        "  Changes: "
        + (", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "none")
    )
    changes = report.get("changes") or []
    for change in changes[:SHOWN_CHANGES]:
        who = change.get("userId") or change.get("employeeId")
        lines.append(f"    {change['kind']:<16} {who:<24} {change['reason']}: {change['message']}")
    if len(changes) > SHOWN_CHANGES:
        lines.append(f"    ... and {len(changes) - SHOWN_CHANGES} more (--json for all)")
    every_held = report.get("held") or []
    held = [c for c in every_held if c.get("kind") != "entra_delete"]
    deletions = len(every_held) - len(held)
    if deletions:  # the held_by_guard error below says how to approve them (N:DIGEST)
        lines.append(f"  Held by the guard: {deletions} Entra deletions (writeBack.delete)")
    if held:
        lines.append(f"  Held by the deactivation guard: {len(held)} deactivations")
        for change in held[:SHOWN_CHANGES]:
            lines.append(f"    {change['userId']:<24} {change['reason']}: {change['message']}")
        digest = report.get("heldDigest")
        approval = f"{len(held)}:{digest}" if digest else str(len(held))
        lines.append(f"  Approve with: emply-sync sync --approve-deactivations {approval}")
    skips = report.get("skips") or {}
    for reason, n in sorted(skips.items()):
        lines.append(f"  Skipped: {n} × {reason}")
    for error in report.get("errors") or []:
        lines.append(f"  ! {error['reason']}: {error['message']}")
    return "\n".join(lines)


def format_explanation(result: dict[str, Any]) -> str:
    if "employee" in result:
        head = f"Employee {result['employee']['id']} <{result['employee']['email']}>"
    elif "entraUser" in result:
        entra_user = result["entraUser"]
        head = (
            f"Entra user {entra_user['userPrincipalName']} ({entra_user['id']}): "
            "no Emply user"
        )
    else:
        user = result["user"]
        head = (
            f"User {user['id']} ({user['username']}): {user['status']}, "
            f"roles {', '.join(user.get('roles') or []) or 'none'}"
        )
    lines = [head, "Why:"]
    lines += [f"  - {why}" for why in result["why"]]
    if result.get("groups"):
        lines.append(
            "Configured groups: "
            + ", ".join(f"{g['displayName']} (role {g['roleId']})" for g in result["groups"])
        )
    last = result.get("lastChange")
    if last:
        lines.append(
            f"Last change: {last['kind']} ({last['rule']}, {last['reason']}) in run "
            f"{last['runId']} at {last['at']}: {last['message']}"
        )
    nxt = result.get("nextRun") or {}
    lines.append(f"Next run: {nxt.get('summary', 'nothing')}")
    for problem in nxt.get("problems") or []:
        lines.append(f"  ! {problem['reason']}: {problem['message']}")
    for faq in result.get("faq") or []:
        lines.append(f"FAQ: {faq['question']}\n  {faq['answer']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
