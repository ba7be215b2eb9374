"""The change-notification settings, read and checked in one place.

`EMPLY_SYNC_NOTIFICATIONS` turns the feature on ("true") or off ("false", or unset: the
timer alone, exactly as before). When on, `EMPLY_SYNC_PUBLIC_URL` (the app's https base
URL) and `EMPLY_SYNC_NOTIFICATION_KEY` (the function key Graph puts in the URL) must be
set; `EMPLY_SYNC_NOTIFICATION_DEBOUNCE_SECONDS` (default 60) bounds how often a
notification may start a run. A bad value is a ValueError naming the setting.
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
_TRUE, _FALSE = {"true", "1", "on", "yes"}, {"false", "0", "off", "no", ""}
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}


@dataclasses.dataclass(frozen=True)
class NotifySettings:
    enabled: bool
    public_url: str | None
    key: str | None
    debounce_seconds: int

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
    debounce_raw = (env.get(config.NOTIFICATION_DEBOUNCE) or "").strip()
    if not debounce_raw:
        debounce = config.DEFAULT_NOTIFICATION_DEBOUNCE_SECONDS
    elif debounce_raw.isascii() and debounce_raw.isdigit() \
            and int(debounce_raw) <= MAX_DEBOUNCE_SECONDS:
        debounce = int(debounce_raw)
    else:
        raise ValueError(f"{config.NOTIFICATION_DEBOUNCE} must be whole seconds from 0 to "
                         f"{MAX_DEBOUNCE_SECONDS}, got {debounce_raw[:20]!r}")
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
                          debounce_seconds=debounce)
