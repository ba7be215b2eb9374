"""The mailbox pass's app settings (`shared.config`), read and checked in one place.

A bad value is a ValueError naming the setting (the boundary reports it as
`bad_configuration`). Notifications: with `EMPLY_SYNC_NOTIFICATIONS` on, a run reads the
mailboxes Graph said changed and its sweep's (`EMPLY_SYNC_MAILBOX_SWEEP_HOURS`), and
keeps a subscription on each synced mailbox's events, calling back the same route as
the users/groups ones (`shared.notify.settings`, whose checks of the URL and key hold
when notifications are on).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from urllib.parse import quote

from shared import config
from shared.graph.mailbox_gate import DEFAULT_BATCHES

DEFAULT_SHARD_SIZE = 250
"""Synced mailboxes a shard holds (about; a bucket is never split)."""
DEFAULT_SHARDS_AT_ONCE = 2
DEFAULT_SWEEP_HOURS = 24
MAX_SWEEP_HOURS = 168
NOTIFICATION_ROUTE = "graph/notifications"
"""The notification route (`shared.notify.settings.ROUTE`): one for every subscription."""
_TRUE = {"true", "1", "on", "yes"}


@dataclasses.dataclass(frozen=True)
class PassSettings:
    shard_size: int = DEFAULT_SHARD_SIZE
    shards_at_once: int = DEFAULT_SHARDS_AT_ONCE
    batches: int = DEFAULT_BATCHES
    """`$batch` requests in flight at most (`MailboxGate`)."""
    queued: bool = False
    """The shards go on the mailbox queue (`queued`) instead of running in the run."""
    notification_url: str | None = None
    """Set when notifications are on: where Graph calls back (the function key in it)."""
    sweep_hours: int = DEFAULT_SWEEP_HOURS
    """With notifications on: every mailbox is read at least once in this many hours."""

    @property
    def notified(self) -> bool:
        return self.notification_url is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> PassSettings:
        mode = (env.get(config.MAILBOX_SHARDS) or "inline").strip().lower()
        if mode not in ("inline", "queue"):
            raise ValueError(f"{config.MAILBOX_SHARDS} must be inline or queue, "
                             f"got {mode[:20]!r}")
        return cls(shard_size=_whole(env, config.MAILBOX_SHARD_SIZE, DEFAULT_SHARD_SIZE,
                                     1, 5000),
                   batches=_whole(env, config.MAILBOX_BATCHES, DEFAULT_BATCHES, 1, 256),
                   queued=mode == "queue", notification_url=_notification_url(env),
                   sweep_hours=_whole(env, config.MAILBOX_SWEEP_HOURS, DEFAULT_SWEEP_HOURS,
                                      0, MAX_SWEEP_HOURS))


def _notification_url(env: Mapping[str, str]) -> str | None:
    if (env.get(config.NOTIFICATIONS) or "").strip().lower() not in _TRUE:
        return None
    public = (env.get(config.PUBLIC_URL) or "").strip().rstrip("/")
    key = (env.get(config.NOTIFICATION_KEY) or "").strip()
    if not public or not key:
        return None  # the notification settings say what is missing (shared.notify)
    return f"{public}/api/{NOTIFICATION_ROUTE}?code={quote(key, safe='')}"


def _whole(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit() and low <= int(raw) <= high):
        raise ValueError(f"{name} must be a whole number from {low} to {high}, "
                         f"got {raw[:20]!r}")
    return int(raw)
