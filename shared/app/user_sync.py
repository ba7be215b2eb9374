"""One user now, for the HTTP trigger (`POST /api/users/{key}/sync`).

The run happens in the request (`boundary.sync_user`): one user is a handful of Graph
requests and a few writes. Its reads are bounded by `READ_SECONDS`; when Graph throttles
past that, the run stops before it applies anything and is queued the way
`POST /api/sync` queues a run (`manual_runs.request_run`, under the same run id, with
the key in the request): the caller gets 202 and where to poll, and the queue worker
runs it to the end. The apply after the reads (that user's writes) is not cut short.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from shared.app import boundary, manual_runs

READ_SECONDS = manual_runs.MAX_WAIT_SECONDS
"""The reads' bound in a request: well inside the front end's 230 s and a client's
patience, as `POST /api/sync?wait=N`'s."""
MAX_KEY_CHARS = 320
"""Longer than any Emply id, username, e-mail address (254) or Entra UPN (113)."""


class BadKey(ValueError):
    """The key cannot name anyone: nothing was read or recorded."""


@dataclasses.dataclass(frozen=True)
class Outcome:
    """The run's report (with the answer under `user`), or the queued record."""

    report: dict[str, Any]
    queued: bool = False


def check_key(key: str) -> str:
    """The key, or `BadKey` naming what is wrong with it."""
    if not key.strip():
        raise BadKey("the key is empty; give an Emply user id, username or e-mail, or an "
                     "Entra object id, UPN or mail")
    if len(key) > MAX_KEY_CHARS:
        raise BadKey(f"the key is {len(key)} characters; at most {MAX_KEY_CHARS}")
    if any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise BadKey("the key contains control characters")
    return key.strip()


async def sync_user(key: str, *, dry_run: bool = False,
                    environ: Mapping[str, str] | None = None) -> Outcome:
    """Raises `BadKey`, `boundary.RunInProgress`, `boundary.UserNotFound` and
    `boundary.AmbiguousUser` (nothing changed, nothing recorded)."""
    key = check_key(key)
    try:
        return Outcome(await boundary.sync_user(key, dry_run=dry_run, environ=environ,
                                                read_within=READ_SECONDS))
    except boundary.ReadsTooSlow as exc:
        queued = await manual_runs.request_run(dry_run=dry_run, user=key, run_id=exc.run_id,
                                               environ=environ)
        return Outcome(queued, queued=True)
