"""R9 `writeBack.create` on Graph: new Entra users for the plan's `entra_create` changes.

Three rounds of `$batch` items (20 a batch, per-item retries: `writer.exchange`):

1. Look the UPN up (`$filter=userPrincipalName eq '…' or startswith(mailNickname,'…')`).
   A user found with that UPN is taken as this change's, never created again: a run
   that died between its POST and the Emply link (or whose POST's answer was lost) is
   finished, not repeated. The nicknames found make the new one unique.
2. `POST /users` for the others: `accountEnabled`, the change's fields, and a password
   from `secrets` that meets Entra's complexity rule, to be changed at first sign-in.
   Graph's "Another object with the same value for property mailNickname" (a nickname
   the lookup did not list) is answered by trying the next suffix.
3. `POST /groups/{first configured group}/members/$ref`; "already exist" counts as done.

Only a user that is in the group is returned as created (the caller links it): one
outside the group would be out of scope, so the next run would unlink it again. What
failed is reported per user (`entra_write_failed`), or once for a missing permission
(`graph_write_forbidden`), and is planned again by the next run. A UPN Graph would
refuse (`shared.reconcile.upn`: characters the alias may not hold) is never sent: that
user is refused with `upn_invalid` (permanent until its e-mail changes). A write the
write quota could not fit before the deadline, or still throttled (429) after the
retries, is deferred (`CreateResult.deferred`, no error): the next run plans it again.

The password lives only in the POST's body: it is never logged, returned or stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import string
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from shared.graph import client as graph_client
from shared.graph import writer
from shared.reconcile import entra_create, model, upn

PASSWORD_LENGTH = 20
SYMBOLS = "!#$%&*+-=?@^_"
PASSWORD_CLASSES = (string.ascii_lowercase, string.ascii_uppercase, string.digits, SYMBOLS)
NICKNAME_TRIES = 5
"""POSTs per user when Graph keeps answering that the mailNickname is taken."""
NICKNAME_TAKEN = "property mailNickname"
MEMBER_EXISTS = "already exist"
DIRECTORY_OBJECTS = "https://graph.microsoft.com/v1.0/directoryObjects/"


def new_password(length: int = PASSWORD_LENGTH) -> str:
    """A random password with all four character classes (Entra asks for three of four,
    8 to 256 characters), from `secrets`."""
    if length < len(PASSWORD_CLASSES):
        raise ValueError(f"password length must be at least {len(PASSWORD_CLASSES)}")
    alphabet = "".join(PASSWORD_CLASSES)
    chars = [secrets.choice(c) for c in PASSWORD_CLASSES]
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


@dataclasses.dataclass(frozen=True)
class CreateResult:
    created: tuple[tuple[model.Change, str], ...] = ()
    """Each change carried out, with the Entra id of its user (now in the group)."""
    failed: tuple[model.Change, ...] = ()
    """Every change not carried out, deferred ones too (as `writer.WriteResult.failed`)."""
    errors: tuple[dict[str, Any], ...] = ()
    """One per change failed or refused (`upn_invalid`), or one for a missing permission;
    none for a deferred change."""
    batches: int = 0
    posts: int = 0
    """POST /users items sent (retries included)."""
    deferred: tuple[model.Change, ...] = ()
    """Not carried out for want of write quota before the deadline: not an error,
    planned again by the next run (a user posted but not yet in the group is added by
    that run)."""


def _literal(value: str) -> str:
    return quote(value.replace("'", "''"), safe="@")


def lookup_request(change: model.Change, item_id: str) -> dict[str, Any]:
    upn = str(change.after["userPrincipalName"])
    nickname = str(change.after["mailNickname"])
    query = (f"$filter=userPrincipalName eq '{_literal(upn)}' or "
             f"startswith(mailNickname,'{_literal(nickname)}')"
             "&$select=id,userPrincipalName,mailNickname&$top=999")
    return {"id": item_id, "method": "GET", "url": f"/users?{query}"}


def post_request(change: model.Change, item_id: str, nickname: str,
                 password: str) -> dict[str, Any]:
    body = {**change.after, "accountEnabled": True, "mailNickname": nickname,
            "passwordProfile": {"password": password, "forceChangePasswordNextSignIn": True}}
    return {"id": item_id, "method": "POST", "url": "/users",
            "headers": {"Content-Type": "application/json"}, "body": body}


def member_request(group_id: str, entra_id: str, item_id: str) -> dict[str, Any]:
    return {"id": item_id, "method": "POST", "url": f"/groups/{group_id}/members/$ref",
            "headers": {"Content-Type": "application/json"},
            "body": {"@odata.id": DIRECTORY_OBJECTS + entra_id}}


@dataclasses.dataclass
class _Progress:
    """What the three rounds found so far, by `$batch` item id."""

    by_id: dict[str, model.Change]
    found: dict[str, str] = dataclasses.field(default_factory=dict)
    """Item → Entra id of the user with the UPN."""
    taken: dict[str, set[str]] = dataclasses.field(default_factory=dict)
    """Item → lower-case nicknames in use."""
    failures: dict[str, tuple[str, str, int | None]] = dataclasses.field(default_factory=dict)
    deferred: set[str] = dataclasses.field(default_factory=set)
    batches: int = 0
    posts: int = 0

    def settled(self, item_id: str) -> bool:
        return item_id in self.failures or item_id in self.deferred

    def note(self, sent: writer.Exchanged, item_id: str) -> bool:
        """True when the item was answered 2xx; else it is recorded failed or deferred."""
        status = sent.answers[item_id][0]
        if 200 <= status < 300:
            return True
        if item_id in sent.deferred:
            self.deferred.add(item_id)
        else:
            self.failures[item_id] = sent.failure(item_id)
        return False


async def create_users(
    graph: graph_client.GraphClient,
    changes: Sequence[model.Change],
    group_id: str,
    *,
    sleep: writer.Sleep = asyncio.sleep,
    password: Callable[[], str] = new_password,
) -> CreateResult:
    """Carry out `changes` (entra_create); see the module's docstring."""
    done = _Progress({str(i): c for i, c in enumerate(changes)})
    for item_id, change in done.by_id.items():
        problem = upn.upn_problem(str(change.after["userPrincipalName"]))
        if change.entra_id is None and problem is not None:
            done.failures[item_id] = (upn.UPN_INVALID, problem, None)
    await _look_up(graph, done, sleep)
    await _post(graph, done, sleep, password)
    created = await _add_to_group(graph, done, group_id, sleep)
    by_id = done.by_id
    failed = tuple(by_id[i] for i in sorted({*done.failures, *done.deferred}, key=int))
    errors = writer.errors_of(done.failures, {int(i): c for i, c in by_id.items()})
    return CreateResult(tuple(created), failed, errors, done.batches, done.posts,
                        tuple(by_id[i] for i in sorted(done.deferred, key=int)))


async def _look_up(graph: graph_client.GraphClient, done: _Progress,
                   sleep: writer.Sleep) -> None:
    """Round 1: each UPN looked up; a user found is this change's, never created again."""
    looked = await writer.exchange(
        graph, [lookup_request(c, i) for i, c in done.by_id.items()
                if c.entra_id is None and not done.settled(i)], sleep=sleep)
    done.batches += looked.batches
    for item_id, change in done.by_id.items():
        if change.entra_id is not None:
            done.found[item_id] = change.entra_id  # planned as an unfinished create
            continue
        if done.settled(item_id) or not done.note(looked, item_id):
            continue
        body = looked.answers[item_id][2]
        upn_key = model.norm(str(change.after["userPrincipalName"]))
        values = body.get("value") if isinstance(body, dict) else None
        for user in values if isinstance(values, list) else ():
            if not isinstance(user, dict):
                continue
            if model.norm(user.get("userPrincipalName")) == upn_key and user.get("id"):
                done.found[item_id] = str(user["id"])
            done.taken.setdefault(item_id, set()).add(model.norm(user.get("mailNickname")))


async def _post(graph: graph_client.GraphClient, done: _Progress, sleep: writer.Sleep,
                password: Callable[[], str]) -> None:
    """Round 2: POST /users for the users not found, the next nickname on a conflict."""
    to_post = {i: c for i, c in done.by_id.items()
               if i not in done.found and not done.settled(i)}
    for _ in range(NICKNAME_TRIES):
        if not to_post:
            break
        nicknames = {i: entra_create.unique_nickname(
            str(c.after["mailNickname"]), frozenset(done.taken.get(i, ())))
            for i, c in to_post.items()}
        posted = await writer.exchange(
            graph, [post_request(c, i, nicknames[i], password()) for i, c in to_post.items()],
            sleep=sleep)
        done.batches += posted.batches
        done.posts += len(to_post)
        again: dict[str, model.Change] = {}
        for item_id, change in to_post.items():
            status, _, body = posted.answers[item_id]
            if status == 400 and NICKNAME_TAKEN in _message(body):
                done.taken.setdefault(item_id, set()).add(nicknames[item_id].lower())
                again[item_id] = change
            elif done.note(posted, item_id):
                if isinstance(body, dict) and body.get("id"):
                    done.found[item_id] = str(body["id"])
                else:
                    done.failures[item_id] = (writer.WRITE_FAILED,
                                              "Graph created no user id", status)
        to_post = again
    for item_id in to_post:  # still a nickname conflict after NICKNAME_TRIES
        done.failures.setdefault(item_id, (writer.WRITE_FAILED, "mailNickname taken after "
                                           f"{NICKNAME_TRIES} tries", 400))


async def _add_to_group(graph: graph_client.GraphClient, done: _Progress, group_id: str,
                        sleep: writer.Sleep) -> list[tuple[model.Change, str]]:
    """Round 3: each user found or created joins the group; "already exist" is done."""
    added = await writer.exchange(
        graph, [member_request(group_id, e, i) for i, e in done.found.items()], sleep=sleep)
    done.batches += added.batches
    created: list[tuple[model.Change, str]] = []
    for item_id, entra_id in done.found.items():
        status, _, body = added.answers[item_id]
        if (status == 400 and MEMBER_EXISTS in _message(body)) or done.note(added, item_id):
            created.append((done.by_id[item_id], entra_id))
    return created


def _message(body: Any) -> str:
    error = body.get("error") if isinstance(body, dict) else None
    return str(error.get("message") or "") if isinstance(error, dict) else ""
