"""The change-notification settings, read and checked in one place.

`EMPLY_SYNC_NOTIFICATIONS` turns the feature on ("true") or off ("false", or unset: the
timer alone, exactly as before). When on, `EMPLY_SYNC_PUBLIC_URL` (the app's https base
URL) and `EMPLY_SYNC_NOTIFICATION_KEY` (the function key Graph puts in the URL) must be
set; `EMPLY_SYNC_NOTIFICATION_DEBOUNCE_SECONDS` (default 60) bounds how often a
notification may start a run. `EMPLY_SYNC_NOTIFICATION_RECHECK_SECONDS` (default 15; 0:
never) and `EMPLY_SYNC_NOTIFICATION_RECHECKS` (default 3): a notification whose delta
round shows nothing new is looked at again that many seconds later, doubled each time,
at most that many times (Graph's delta can lag its notification). A bad value is a
ValueError naming the setting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping
from urllib.parse import quote, urlsplit

from shared import config

ROUTE = "graph/notifications"
MAX_DEBOUNCE_SECONDS = 3600
MAX_RECHECK_SECONDS = 600
MAX_RECHECKS = 10
_TRUE, _FALSE = {"true", "1", "on", "yes"}, {"false", "0", "off", "no", ""}
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


@dataclasses.dataclass(frozen=True)
class NotifySettings:
    enabled: bool
    public_url: str | None
    key: str | None
    debounce_seconds: int
    recheck_seconds: int = config.DEFAULT_NOTIFICATION_RECHECK_SECONDS
    """The first look again at a notification whose delta showed nothing (0: none)."""
    rechecks: int = config.DEFAULT_NOTIFICATION_RECHECKS
    """Looks again at most, each after twice the wait of the one before."""

    def recheck_delay(self, done: int) -> int | None:
        """Seconds until the next look at a notification looked at `done` times again
        already; None when it is given up."""
        if not self.recheck_seconds or done >= self.rechecks:
            return None
        return int(self.recheck_seconds * 2 ** done)

    @property
    def notification_url(self) -> str:
        """Where Graph sends change and lifecycle notifications (with the function key)."""
        if not self.public_url or not self.key:
            raise ValueError(f"{config.PUBLIC_URL} and {config.NOTIFICATION_KEY} must be set "
                             "when notifications are on")
        return f"{self.public_url}/api/{ROUTE}?code={quote(self.key, safe='')}"

    @property
    def url_digest(self) -> str:
        """A digest of the notification URL (stored instead of the key)."""
        return hashlib.sha256(self.notification_url.encode()).hexdigest()[:32]


def read(environ: Mapping[str, str] | None = None) -> NotifySettings:
    env = os.environ if environ is None else environ
    raw = (env.get(config.NOTIFICATIONS) or "").strip().lower()
    if raw not in _TRUE | _FALSE:
        raise ValueError(f"{config.NOTIFICATIONS} must be true or false, got {raw[:20]!r}")
    debounce = _whole(env, config.NOTIFICATION_DEBOUNCE,
                      config.DEFAULT_NOTIFICATION_DEBOUNCE_SECONDS, MAX_DEBOUNCE_SECONDS,
                      "whole seconds")
    recheck = _whole(env, config.NOTIFICATION_RECHECK,
                     config.DEFAULT_NOTIFICATION_RECHECK_SECONDS, MAX_RECHECK_SECONDS,
                     "whole seconds")
    rechecks = _whole(env, config.NOTIFICATION_RECHECKS, config.DEFAULT_NOTIFICATION_RECHECKS,
                      MAX_RECHECKS, "a whole number")
    public = (env.get(config.PUBLIC_URL) or "").strip().rstrip("/") or None
    if public is not None:
        parts = urlsplit(public)
        loopback = parts.hostname in _LOOPBACK
        if not parts.hostname or parts.scheme not in ("https", "http") or (
                parts.scheme == "http" and not loopback):
            raise ValueError(f"{config.PUBLIC_URL} must be an https URL (http only for "
                             f"loopback), got {public[:60]!r}")
    key = (env.get(config.NOTIFICATION_KEY) or "").strip() or None
    return NotifySettings(enabled=raw in _TRUE, public_url=public, key=key,
                          debounce_seconds=debounce, recheck_seconds=recheck,
                          rechecks=rechecks)


def _whole(env: Mapping[str, str], name: str, default: int, most: int, what: str) -> int:
    """A whole-number setting from 0 to `most` (`default` when unset)."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    if raw.isascii() and raw.isdigit() and int(raw) <= most:
        return int(raw)
    raise ValueError(f"{name} must be {what} from 0 to {most}, got {raw[:20]!r}")
