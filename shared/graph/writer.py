"""Write-back to Entra (R9): a plan's `entra_*` changes sent as Graph `$batch` requests.

Graph takes at most 20 requests in one `$batch`, and answers each on its own: one
item may be throttled (429) or refused while the others succeed, and the SDK's retry
handler only sees the batch's own status (200). So items answered 429, 503 or 504
are sent again, in a later batch, after the longest `Retry-After` among them (or the
policy's backoff), within the client's `RetryPolicy` (retries and total wait).

What cannot be written is reported per user and never stops the other writes:
- `hybrid_user`: Graph refuses to change a user mastered on-premises (R10);
- `graph_write_forbidden`: the app registration has no write permission (HTTP 403):
  one error for the run, naming how many writes it refused, not one per user;
- `entra_write_failed`: anything else, after the retries. The next run plans the
  write again (the run records no reusable outcome while writes are planned).

Only ids, reason codes and Graph's error codes are logged or reported: the values
written are in the run's planned changes, where every change's values already are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
from kiota_abstractions.api_error import APIError
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation

from shared.graph import client as graph_client
from shared.graph import middleware
from shared.reconcile import model

MAX_BATCH = 20
CONCURRENT_BATCHES = 4
"""`$batch` requests in flight at once: Graph throttles a client that floods it, and
four keep a 20 ms round trip from dominating a 10,000-user write-back."""
RETRY_STATUSES = frozenset({429, 503, 504})
HYBRID_MARKER = "on-premises mastered"
"""In Graph's message when a write to a user synchronized from on-premises is refused."""

WRITE_FAILED = "entra_write_failed"
WRITE_FORBIDDEN = "graph_write_forbidden"

Sleep = Callable[[float], Awaitable[None]]
Answers = dict[str, tuple[int, dict[str, Any], Any]]


@dataclasses.dataclass(frozen=True)
class WriteResult:
    """What happened to each planned write."""

    written: tuple[model.Change, ...] = ()
    failed: tuple[model.Change, ...] = ()
    errors: tuple[dict[str, Any], ...] = ()
    batches: int = 0
    """`$batch` requests sent (retries included)."""


def request_of(change: model.Change, item_id: str) -> dict[str, Any]:
    """The `$batch` item that carries out `change`."""
    if change.kind == model.ENTRA_UPDATE:
        return {"id": item_id, "method": "PATCH", "url": f"/users/{change.entra_id}",
                "headers": {"Content-Type": "application/json"}, "body": dict(change.after)}
    if change.kind == model.ENTRA_DELETE:
        # Graph moves the user to directory/deletedItems (restorable for 30 days).
        return {"id": item_id, "method": "DELETE", "url": f"/users/{change.entra_id}"}
    raise ValueError(f"no Graph write for change kind {change.kind!r}")


async def write_changes(
    graph: graph_client.GraphClient,
    changes: Sequence[model.Change],
    *,
    sleep: Sleep = asyncio.sleep,
) -> WriteResult:
    """Send `changes` (entra_update and entra_delete) and report, per change, whether it
    was written."""
    by_id = dict(enumerate(changes))
    sent = await exchange(graph, [request_of(c, str(i)) for i, c in by_id.items()],
                          sleep=sleep)
    written: list[model.Change] = []
    failures: dict[str, tuple[str, str, int | None]] = {}  # item → (reason, detail, status)
    for item_id, change in ((str(i), c) for i, c in by_id.items()):
        status = sent.answers[item_id][0]
        if 200 <= status < 300 or (status == 404 and change.kind == model.ENTRA_DELETE):
            written.append(change)  # a user already gone is as good as deleted
        else:
            failures[item_id] = sent.failure(item_id)
    failed = tuple(by_id[int(i)] for i in sorted(failures, key=int))
    return WriteResult(tuple(written), failed, errors_of(failures, by_id), sent.batches)


@dataclasses.dataclass(frozen=True)
class Exchanged:
    """Each `$batch` item's last answer, after the retries."""

    answers: Answers
    exhausted: dict[str, int]
    """Items still answered 429/503/504 when the retries ran out → attempts made."""
    batches: int

    def failure(self, item_id: str) -> tuple[str, str, int | None]:
        """(reason, detail, status) of an item that was not answered 2xx."""
        status, _, body = self.answers[item_id]
        if item_id in self.exhausted:
            return (WRITE_FAILED, f"{_detail(status, body)}, after {self.exhausted[item_id]} "
                    "attempt(s)", status)
        return (*_refusal(status, body), status)


async def exchange(
    graph: graph_client.GraphClient,
    requests: Sequence[dict[str, Any]],
    *,
    sleep: Sleep = asyncio.sleep,
) -> Exchanged:
    """Send `$batch` items (each with a unique `id`), 20 a batch, a few batches at once;
    items answered 429, 503 or 504 go again in a later round, after the longest
    `Retry-After` among them, within the client's `RetryPolicy`."""
    pending = {r["id"]: r for r in requests}
    final: Answers = {}
    batches = 0
    waited = 0.0
    attempt = 0
    policy = graph.retry
    while pending:
        delay = 0.0
        items = list(pending.values())
        chunks = [items[s:s + MAX_BATCH] for s in range(0, len(items), MAX_BATCH)]
        retry: dict[str, dict[str, Any]] = {}
        for start in range(0, len(chunks), CONCURRENT_BATCHES):
            wave = chunks[start:start + CONCURRENT_BATCHES]
            batches += len(wave)
            for answers in await asyncio.gather(*(_send(graph, chunk) for chunk in wave)):
                for item_id, answer in answers.items():
                    final[item_id] = answer
                    if answer[0] in RETRY_STATUSES:
                        retry[item_id] = pending[item_id]
                        delay = max(delay, _retry_after(answer[1], policy, attempt))
        pending = retry
        if pending and (attempt >= policy.max_retries or waited + delay > policy.max_total_delay):
            return Exchanged(final, {i: attempt + 1 for i in pending}, batches)
        if pending:
            waited += delay
            attempt += 1
            await sleep(delay)
    return Exchanged(final, {}, batches)


async def _send(graph: graph_client.GraphClient, requests: list[dict[str, Any]]) -> Answers:
    """One `$batch`: each item's (status, headers, body). A batch refused or unanswered as
    a whole gives every item that answer (status 0: no answer)."""
    request = RequestInformation(Method.POST)
    request.url = graph.absolute_url("/$batch")
    request.headers.try_add("Accept", "application/json")
    request.set_stream_content(json.dumps({"requests": requests}).encode(), "application/json")
    try:
        raw = await graph.adapter.send_primitive_async(request, "bytes", graph_client._ERROR_MAP)
        parsed = json.loads(raw) if raw else {}
    except APIError as exc:
        status = exc.response_status_code or 0
        return {r["id"]: (status, dict(exc.response_headers or {}), _api_body(exc))
                for r in requests}
    except (httpx.HTTPError, ValueError) as exc:
        return {r["id"]: (0, {}, {"error": {"code": type(exc).__name__}}) for r in requests}
    answers: Answers = {}
    for entry in parsed.get("responses") or ():
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            answers[entry["id"]] = (int(entry.get("status") or 0),
                                    dict(entry.get("headers") or {}), entry.get("body"))
    for r in requests:  # an item Graph did not answer is retried like a 503
        answers.setdefault(r["id"], (503, {}, None))
    return answers


def _api_body(exc: APIError) -> dict[str, Any]:
    error = getattr(exc, "error", None)
    return {"error": {"code": getattr(error, "code", None),
                      "message": getattr(error, "message", None) or exc.message}}


def _retry_after(
    headers: dict[str, Any], policy: middleware.RetryPolicy, attempt: int
) -> float:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value))
            except (TypeError, ValueError):
                break
    return policy.backoff_factor * float(2 ** attempt)


def _code_message(body: Any) -> tuple[str | None, str]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, ""
    return error.get("code"), str(error.get("message") or "")


def _detail(status: int, body: Any) -> str:
    code, _ = _code_message(body)
    status_text = f"HTTP {status}" if status else "no HTTP response"
    return f"{status_text}, error code {code or 'unknown'}"


def _refusal(status: int, body: Any) -> tuple[str, str]:
    _, message = _code_message(body)
    if status == 400 and HYBRID_MARKER in message:
        return model.HYBRID_USER, _detail(status, body)
    if status in (401, 403):
        return WRITE_FORBIDDEN, _detail(status, body)
    return WRITE_FAILED, _detail(status, body)


def errors_of(
    failures: dict[str, tuple[str, str, int | None]], by_id: dict[int, model.Change]
) -> tuple[dict[str, Any], ...]:
    out: list[dict[str, Any]] = []
    forbidden = [i for i, (reason, _, _) in failures.items() if reason == WRITE_FORBIDDEN]
    if forbidden:
        creating = any(by_id[int(i)].kind == model.ENTRA_CREATE for i in forbidden)
        out.append({
            "reason": WRITE_FORBIDDEN, "temporary": False, "rule": "R9",
            "message": f"Graph refused {len(forbidden)} write-back request(s) "
            f"({failures[forbidden[0]][1]}): the app registration has no permission to "
            "write users (User.ReadWrite.All)"
            + (", or group members (GroupMember.ReadWrite.All, for writeBack.create)"
               if creating else "")
            + "; deploy it with enableWriteBack=true"
            + (" and enableWriteBackCreate=true" if creating else "")
            + " (docs/deploy.md) or turn the writeBack options off. "
            + ("A user created but not yet in the group is added and linked by the next run "
               "that may write" if creating else "Nothing was written"),
        })
    for item_id in sorted(failures, key=int):
        reason, detail, status = failures[item_id]
        if reason == WRITE_FORBIDDEN:
            continue
        change = by_id[int(item_id)]
        target = change.entra_id or change.after.get("userPrincipalName")
        entry: dict[str, Any] = {"reason": reason, "rule": "R10" if reason == model.HYBRID_USER
                                 else "R9", "entraId": change.entra_id}
        if change.user_id is not None:
            entry["userId"] = change.user_id
        if reason == model.HYBRID_USER:
            entry["message"] = (
                f"Graph refused {change.kind} of Entra user {target} ({detail}): it "
                "is synchronized from on-premises, which Microsoft does not allow to be "
                "changed in the cloud; change it on-premises")
            entry["temporary"] = False
        else:
            entry["message"] = (
                f"{change.kind} of Entra user {target} was not written ({detail}); "
                "the next run tries it again")
            entry["temporary"] = not status or status in RETRY_STATUSES or status >= 500
        out.append(entry)
    return tuple(out)
