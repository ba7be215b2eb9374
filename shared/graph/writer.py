"""Write-back to Entra (R9): a plan's `entra_*` changes sent as Graph `$batch` requests.

Graph takes at most 20 requests in one `$batch`, and answers each on its own: one
item may be throttled (429) or refused while the others succeed, and the SDK's retry
handler only sees the batch's own status (200). So items answered 429, 503 or 504
are sent again, in a later batch, after the longest `Retry-After` among them (or the
policy's backoff), within the client's `RetryPolicy` (retries and total wait). Every
batch of writes first takes its slots from the client's `WritePacer`, which keeps the
run under Graph's write quota (3,000 per 150 s per app and tenant,
`shared.graph.pacing`); pacing waits and `Retry-After` waits share one deadline, the
policy's `max_total_delay`.

What cannot be written is reported per user and never stops the other writes:
- deferred (`WriteResult.deferred`, no error): the write quota ran out before the
  deadline, so the write was not sent, or was still answered 429 after the retries;
  the next run plans it again, as it does every write not made;
- `hybrid_user`: Graph refuses to change a user mastered on-premises (R10);
- `entra_user_protected`: Graph refused one user with 403 while it accepted other
  writes of the same run: the permission is there, the user is not writable by the
  app, which is what app-only User.ReadWrite.All meets on users with a privileged
  administrator role (api/user-delete.md, api/user-update.md), or on a user the caller
  says Graph refused so before (`known_protected`). Graph answers both cases alike
  (403 `Authorization_RequestDenied`), so a run whose every write is refused cannot
  tell them apart otherwise and reports:
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
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Any

import httpx
from kiota_abstractions.api_error import APIError
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation

from shared.graph import client as graph_client
from shared.graph import middleware, pacing
from shared.reconcile import model, upn

MAX_BATCH = 20
CONCURRENT_BATCHES = 4
"""`$batch` requests in flight at once: Graph throttles a client that floods it, and
four keep a 20 ms round trip from dominating a 10,000-user write-back."""
RETRY_STATUSES = frozenset({429, 503, 504})
HYBRID_MARKER = "on-premises mastered"
"""In Graph's message when a write to a user synchronized from on-premises is refused."""

WRITE_FAILED = "entra_write_failed"
WRITE_FORBIDDEN = "graph_write_forbidden"
USER_PROTECTED = "entra_user_protected"
UPN_INVALID = upn.UPN_INVALID

Sleep = Callable[[float], Awaitable[None]]
Answers = dict[str, tuple[int, dict[str, Any], Any]]


@dataclasses.dataclass(frozen=True)
class WriteResult:
    """What happened to each planned write."""

    written: tuple[model.Change, ...] = ()
    failed: tuple[model.Change, ...] = ()
    """Every change not written, whatever the cause (deferred and protected ones too):
    the caller leaves them all out of its counts, and the next run plans them again."""
    errors: tuple[dict[str, Any], ...] = ()
    """One entry per change that failed or is protected, one for a missing permission;
    none for a deferred change."""
    batches: int = 0
    """`$batch` requests sent (retries included)."""
    deferred: tuple[model.Change, ...] = ()
    """Not written for want of write quota before the deadline (not sent, or still 429
    after the retries): not an error; planned again by the next run."""
    protected: tuple[model.Change, ...] = ()
    """Refused as a privileged user's (error `entra_user_protected`, permanent until the
    user or the app's roles change)."""


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
    known_protected: Collection[str] = (),
) -> WriteResult:
    """Send `changes` (entra_update and entra_delete) and report, per change, whether it
    was written. `known_protected`: Entra ids Graph refused as privileged users' before:
    a 403 on one of them is `entra_user_protected` even when no other write was
    accepted (a run whose only write is to such a user)."""
    by_id = dict(enumerate(changes))
    sent = await exchange(graph, [request_of(c, str(i)) for i, c in by_id.items()],
                          sleep=sleep)
    done = {item_id: _written(change, sent.answers[item_id][0])
            for item_id, change in ((str(i), c) for i, c in by_id.items())}
    accepted = any(done.values())  # the app may write: a 403 is about that user
    written: list[model.Change] = []
    deferred: list[model.Change] = []
    protected: list[model.Change] = []
    failures: dict[str, tuple[str, str, int | None]] = {}  # item → (reason, detail, status)
    for item_id, change in ((str(i), c) for i, c in by_id.items()):
        status, _, body = sent.answers[item_id]
        if item_id in sent.deferred:
            deferred.append(change)
        elif done[item_id]:
            written.append(change)
        elif status == 403 and (accepted or change.entra_id in known_protected):
            protected.append(change)
            failures[item_id] = (USER_PROTECTED, _detail(status, body), status)
        else:
            failures[item_id] = sent.failure(item_id)
    failed = tuple(by_id[int(i)] for i in sorted({*failures, *sent.deferred}, key=int))
    return WriteResult(tuple(written), failed, errors_of(failures, by_id), sent.batches,
                       tuple(deferred), tuple(protected))


def _written(change: model.Change, status: int) -> bool:
    # A user already gone is as good as deleted.
    return 200 <= status < 300 or (status == 404 and change.kind == model.ENTRA_DELETE)


@dataclasses.dataclass(frozen=True)
class Exchanged:
    """Each `$batch` item's last answer, after the retries."""

    answers: Answers
    exhausted: dict[str, int]
    """Items still answered 429/503/504 when the retries ran out → attempts made."""
    batches: int
    deferred: frozenset[str] = frozenset()
    """Items not written for want of write quota: never sent (their answer is status 0),
    or still answered 429 when the retries or the deadline ran out."""

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
    """Send `$batch` items (each with a unique `id`), 20 a batch, a few batches at once,
    each batch of writes paced by the client's `WritePacer`; items answered 429, 503 or
    504 go again in a later round, after the longest `Retry-After` among them, within
    the client's `RetryPolicy`. What the deadline leaves unsent, or still 429, is
    deferred."""
    pending = {r["id"]: r for r in requests}
    final: Answers = {}
    deferred: set[str] = set()
    batches = 0
    policy = graph.retry
    budget = pacing.Budget(policy.max_total_delay)
    attempt = 0
    while pending:
        answers, unsent, sent_batches = await _round(graph, list(pending.values()), budget,
                                                     sleep)
        batches += sent_batches
        final.update(answers)
        for item_id in unsent:
            final[item_id] = (0, {}, None)
            deferred.add(item_id)
        retry = {i: pending[i] for i, a in answers.items() if a[0] in RETRY_STATUSES}
        delay = max((_retry_after(answers[i][1], policy, attempt) for i in retry), default=0.0)
        if retry and (attempt >= policy.max_retries or not budget.allows(delay)):
            deferred |= {i for i in retry if final[i][0] == 429}
            return Exchanged(final, {i: attempt + 1 for i in retry}, batches,
                             frozenset(deferred))
        if retry:
            budget.waited += delay
            attempt += 1
            await sleep(delay)
        pending = retry
    return Exchanged(final, {}, batches, frozenset(deferred))


async def _round(graph: graph_client.GraphClient, items: list[dict[str, Any]],
                 budget: pacing.Budget, sleep: Sleep) -> tuple[Answers, list[str], int]:
    """One round: every item once, `CONCURRENT_BATCHES` batches in flight, each batch's
    writes taken from the pacer just before it is sent. Returns (answers, the ids left
    unsent because the pacer could not fit them before the deadline, batches sent)."""
    size = max(1, min(MAX_BATCH, graph.write_pacer.batch_limit or MAX_BATCH))
    chunks = [items[s:s + size] for s in range(0, len(items), size)]
    gate = asyncio.Semaphore(CONCURRENT_BATCHES)
    tasks: list[asyncio.Task[Answers]] = []
    unsent: list[str] = []

    async def send(chunk: list[dict[str, Any]]) -> Answers:
        try:
            return await _send(graph, chunk)
        finally:
            gate.release()

    for chunk in chunks:
        writes = sum(1 for r in chunk if r["method"] != "GET")
        await gate.acquire()
        if unsent or not await graph.write_pacer.acquire(writes, budget, sleep):
            gate.release()  # once one batch cannot go, no later one goes either
            unsent.extend(r["id"] for r in chunk)
            continue
        tasks.append(asyncio.create_task(send(chunk)))
    answers: Answers = {}
    for found in await asyncio.gather(*tasks):
        answers.update(found)
    return answers, unsent, len(tasks)


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
               "that may write" if creating else "Nothing was written")
            + ". Graph refuses a write to a user with a privileged administrator role the "
            "same way: if only such users were to be written, that is the cause",
        })
    for item_id in sorted(failures, key=int):
        reason, detail, status = failures[item_id]
        if reason == WRITE_FORBIDDEN:
            continue
        change = by_id[int(item_id)]
        entry: dict[str, Any] = {"reason": reason, "rule": "R10" if reason == model.HYBRID_USER
                                 else "R9", "entraId": change.entra_id}
        if change.user_id is not None:
            entry["userId"] = change.user_id
        entry["message"], entry["temporary"] = _words(reason, change, detail, status)
        out.append(entry)
    return tuple(out)


def _words(reason: str, change: model.Change, detail: str, status: int | None
           ) -> tuple[str, bool]:
    """(message, temporary) of one change's error."""
    target = change.entra_id or change.after.get("userPrincipalName")
    if reason == model.HYBRID_USER:
        return (f"Graph refused {change.kind} of Entra user {target} ({detail}): it is "
                "synchronized from on-premises, which Microsoft does not allow to be "
                "changed in the cloud; change it on-premises", False)
    if reason == USER_PROTECTED:
        return (f"Graph refused {change.kind} of Entra user {target} ({detail}) while it "
                "accepted this run's other writes: the user holds a privileged "
                "administrator role, which the app's User.ReadWrite.All may not change or "
                "delete; an administrator must change it in Entra", False)
    if reason == UPN_INVALID:
        return (f"{change.kind} of Entra user {target} was not sent: {detail}", False)
    return (f"{change.kind} of Entra user {target} was not written ({detail}); "
            "the next run tries it again",
            not status or status in RETRY_STATUSES or status >= 500)
