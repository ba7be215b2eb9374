"""The planner's vocabulary: immutable snapshots in, an immutable plan out (the plan's
own records live in `shared.reconcile.plan_model` and are named here too).

Invariants:
- Nothing in this package does I/O or reads the clock: `now` is passed in.
- Ids compare exactly; user names and e-mail addresses compare case- and
  white-space-insensitively (see `norm`).
- A `Change` is the only way the planner asks for something to happen; every
  change carries the rule (R1..R18) and the reason code behind it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

# R15's types live in `shared.reconcile.outbound`; named here with the others.
from shared.reconcile.outbound import OutboundCopy as OutboundCopy
from shared.reconcile.outbound import OutboundEvent as OutboundEvent
from shared.reconcile.plan_model import BOOKKEPT as BOOKKEPT
from shared.reconcile.plan_model import ENTRA_USER_PROTECTED as ENTRA_USER_PROTECTED
from shared.reconcile.plan_model import Bookkeeping as Bookkeeping
from shared.reconcile.plan_model import Change as Change
from shared.reconcile.plan_model import EventWrites as EventWrites
from shared.reconcile.plan_model import Outside as Outside
from shared.reconcile.plan_model import Plan as Plan
from shared.reconcile.plan_model import Problem as Problem
from shared.reconcile.plan_model import RefusedWrite as RefusedWrite
from shared.reconcile.plan_model import RunStatus as RunStatus
from shared.reconcile.plan_model import SyncState as SyncState

# Change kinds (README, "Reason codes").
CREATE_USER = "create_user"
LINK_USER = "link_user"
DEACTIVATE_USER = "deactivate_user"
REACTIVATE_USER = "reactivate_user"
SET_ROLES = "set_roles"
EMPLOYEE_STATUS = "employee_status"
# Write-back (R9): Emply → Entra, planned like the Emply-side changes.
ENTRA_UPDATE = "entra_update"
ENTRA_CREATE = "entra_create"
ENTRA_DELETE = "entra_delete"
ENTRA_KINDS = frozenset({ENTRA_UPDATE, ENTRA_CREATE, ENTRA_DELETE})

CALENDAR_ADD = "calendar_add"
CALENDAR_REMOVE = "calendar_remove"
EVENTS_MIRROR = "events_mirror"
EVENT_PUSH = "event_push"
CALENDAR_KINDS = frozenset({CALENDAR_ADD, CALENDAR_REMOVE, EVENTS_MIRROR, EVENT_PUSH})
"""Changes to a user's calendars and events (R13–R15): applied to those entities, never to
the user entity itself (so they do not enter its lastChange/history)."""

# Link reasons (R3): the step that found the user, or a re-created Entra account.
LINKED_BY_USERNAME = "username"
LINKED_BY_EMAIL = "email"
LINKED_BY_EMPLOYEE_EMAIL = "employee_email"
ENTRA_ACCOUNT_REPLACED = "entra_account_replaced"

# Deactivation reasons, in the order R6 applies them.
TENANT_CHANGED = "tenant_changed"
DELETED_IN_ENTRA = "deleted_in_entra"
DISABLED_IN_ENTRA = "disabled_in_entra"
DOMAIN_CHANGED = "domain_changed"
GROUP_REMOVED = "group_removed"
REMOVED_FROM_GROUPS = "removed_from_groups"

# Skips and errors.
AMBIGUOUS_MATCH = "ambiguous_match"
USERNAME_TAKEN = "username_taken"
EMAIL_TAKEN = "email_taken"
EMPLOYEE_WITHOUT_ACCOUNT = "employee_without_account"
EMPLOYEE_PROFILE_CONTROLS_ROLES = "employee_profile_controls_roles"
HELD_BY_GUARD = "held_by_guard"
APPROVAL_MISMATCH = "approval_mismatch"
GROUP_NOT_FOUND = "group_not_found"
UNKNOWN_ROLE = "unknown_role"
HYBRID_TENANT = "hybrid_tenant"
HYBRID_USER = "hybrid_user"
INTEGRATION_DISABLED = "integration_disabled"

# R13 reasons: why a calendar is added to or removed from Emply.
DEFAULT_CALENDAR = "default_calendar"
ADDITIONAL_CALENDAR = "additional_calendar"
CALENDAR_GONE = "calendar_gone"
CALENDAR_NOT_EDITABLE = "calendar_not_editable"
USER_NOT_SYNCED = "user_not_synced"
CALENDAR_SYNC_OFF = "calendar_sync_off"
MAILBOX_NOT_IN_CLOUD = "mailbox_not_in_cloud"

UserStatus = Literal["active", "deactivated", "deleted"]


def norm(value: str | None) -> str:
    """Comparison key for user names and e-mail addresses (R3)."""
    return (value or "").strip().casefold()


def upn_domain(upn: str) -> str:
    return norm(upn).rpartition("@")[2]


@functools.lru_cache(maxsize=64)
def _domain_keys(domains: tuple[str, ...]) -> frozenset[str]:
    """Settings are immutable, so the normalised domain set is computed once per tuple."""
    return frozenset(norm(d) for d in domains)


# --- Entra side -------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class EntraUser:
    id: str
    user_principal_name: str
    mail: str | None
    display_name: str | None
    account_enabled: bool
    on_premises_sync_enabled: bool | None = None
    given_name: str | None = None
    surname: str | None = None
    job_title: str | None = None
    department: str | None = None
    mobile_phone: str | None = None

    @property
    def mail_or_upn(self) -> str:
        return self.mail if self.mail and self.mail.strip() else self.user_principal_name


@dataclasses.dataclass(frozen=True, slots=True)
class EntraGroup:
    id: str
    display_name: str | None
    members: frozenset[str]
    """Direct members: user ids and group ids."""


@dataclasses.dataclass(frozen=True, slots=True)
class EntraCalendar:
    """A calendar of a user's mailbox as Graph lists it (R13)."""

    id: str
    name: str | None
    is_default: bool
    can_edit: bool


@dataclasses.dataclass(frozen=True, slots=True)
class CalendarEvents:
    """R14: one calendar's events as read this run (times as Graph gives them, in UTC)."""

    full: bool
    """The window was read in full (else: the changes since the stored delta link)."""
    events: Sequence[Mapping[str, Any]]
    removed: Sequence[str] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class EntraPhoto:
    """R16: an Entra photo as checked this run."""

    etag: str
    content_type: str
    sha256: str | None = None
    """Of the downloaded bytes; None when they were not downloaded (ETag unchanged)."""


@dataclasses.dataclass(frozen=True, slots=True)
class EntraSnapshot:
    tenant_id: str
    users: Mapping[str, EntraUser]
    groups: Mapping[str, EntraGroup]
    on_premises_sync_enabled: bool = False
    verified_domains: tuple[str, ...] = ()
    mailboxes: Mapping[str, tuple[EntraCalendar, ...] | None] | None = None
    """R13: Entra user id → its calendars (None: no mailbox in the cloud), for the users
    whose calendars were read; None when no calendar was read (calendar sync off)."""
    events: Mapping[tuple[str, str], CalendarEvents | None] | None = None
    """R14: (Entra user id, calendar id) → the events read (None: the calendar was not
    found); None when no event was read (calendar sync off)."""
    photos: Mapping[str, EntraPhoto | None] | None = None
    """R16: Entra user id → its photo (None: it has none), for the users whose photos
    were checked this run; None when none was (photo sync off)."""
    calendars_apart: bool = False
    """R13 and R14 are planned apart, a group of mailboxes at a time
    (`shared.reconcile.mailbox_plan`): this plan leaves calendars and events alone, and
    `mailboxes` is only what R15 needs (the mailboxes of users with events to push)."""
    outbound: Mapping[str, OutboundCopy | None] | None = None
    """R15: outbound event id → its M365 copy as found by its mark this run (None: not
    found), for the events looked up (a write whose answer was lost, one R14 saw go)."""
    refused_writes: Mapping[str, RefusedWrite] | None = None
    """R9: Entra user id → the write Graph last refused as a privileged user's."""


# --- Emply side --------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class GroupMapping:
    group_id: str
    role_id: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class DeactivationGuard:
    max_count: int = 50
    max_percent: float = 20.0
    min_count: int = 10
    """The percentage holds a run only from this many deactivations on (R7), so a small
    organisation's single leaver is never held."""

    def holds(self, count: int, linked_active: int) -> bool:
        """R7: more than `max_count`, or at least `min_count` and more than `max_percent`
        % of the linked active users."""
        return count > self.max_count or (
            count >= self.min_count and count * 100 > self.max_percent * linked_active
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    tenant_id: str
    groups: tuple[GroupMapping, ...]
    default_role_id: str
    enabled: bool = True
    sync_roles: bool = False
    allowed_domains: tuple[str, ...] = ()
    guard: DeactivationGuard = DeactivationGuard()
    calendar_sync: bool = False
    photo_sync: bool = False
    write_back: tuple[str, ...] = ()
    event_window: tuple[int, int] = (1, 60)
    """R14: (days before, days after) today (UTC) whose events are mirrored."""
    """The write-back options turned on (`create`, `update`, `delete`)."""

    @property
    def allowed_domain_keys(self) -> frozenset[str]:
        return _domain_keys(self.allowed_domains)

    @property
    def group_ids(self) -> frozenset[str]:
        return frozenset(g.group_id for g in self.groups)

    @property
    def mapping(self) -> dict[str, str | None]:
        return {g.group_id: g.role_id for g in self.groups}


@dataclasses.dataclass(frozen=True, slots=True)
class Role:
    id: str
    name: str
    administrator: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class EmplyUser:
    id: str
    username: str
    email: str | None
    status: UserStatus = "active"
    roles: tuple[str, ...] = ()
    employee_id: str | None = None
    source: str = "manual"
    entra_id: str | None = None
    display_name: str | None = None
    link_tenant_id: str | None = None
    deactivated_by: str | None = None
    deactivation_reason: str | None = None
    sync_groups: tuple[str, ...] = ()
    """Configured groups the user was in when the sync last looked (R6 group_removed)."""
    role_basis: Mapping[str, str | None] | None = None
    """R11 step 2: group → role of the user's groups as of the last run that reconciled its
    roles; None when no run has (yet) under this rule."""
    linked_domain: str | None = None
    """R6: the UPN domain the user had when linked (the allowed one when `allowedDomains`
    is empty); None for a link made before it was recorded."""
    calendar_sync: bool = True
    """R13's per-user flag: the user's calendars are kept in Emply (with the setting)."""
    entra_create: str | None = None
    """R9 create: the UPN of the Entra user the sync began to create for this user and
    has not yet linked (set before Graph's POST, cleared by the link)."""
    photo: Mapping[str, Any] | None = None
    """R16: what was copied of its Entra photo last (`{"sha256", "etag", ...}`)."""

    @property
    def linked(self) -> bool:
        return self.entra_id is not None


@dataclasses.dataclass(frozen=True, slots=True)
class Employee:
    id: str
    email: str
    status: str = "active"
    resignation_date: dt.date | None = None
    display_name: str | None = None
    given_name: str | None = None
    surname: str | None = None
    job_title: str | None = None
    department: str | None = None
    mobile_phone: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class EmplyCalendar:
    """A user's M365 calendar as kept in Emply (R13), identified by (user_id, id)."""

    user_id: str
    id: str
    name: str | None = None
    is_default: bool = False
    enabled: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class EmplyEvent:
    """A mirrored M365 event in Emply (R14), identified by (user_id, calendar_id, id)."""

    user_id: str
    calendar_id: str
    id: str
    private: bool = False
    """`sensitivity: private`: only its start, end and showAs are kept (R14)."""
    stored: Mapping[str, Any] | None = None
    """The stored entity (R14 compares what was read with it)."""


@dataclasses.dataclass(frozen=True, slots=True)
class EmplySnapshot:
    users: tuple[EmplyUser, ...]
    employees: tuple[Employee, ...] = ()
    roles: tuple[Role, ...] = ()
    calendars: tuple[EmplyCalendar, ...] = ()
    events: tuple[EmplyEvent, ...] = ()
    outbound: tuple[OutboundEvent, ...] = ()


GUARD_WINDOW = dt.timedelta(hours=24)
"""R7: deactivations applied without approval within this window count toward the guard,
so six runs of 45 leavers cannot deactivate 45 % of the users unapproved."""


def held_digest(user_ids: Iterable[str | None]) -> str:
    """A short, order-free digest of a set of held users: what an approval binds to."""
    text = "\n".join(sorted(u for u in user_ids if u is not None))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


_APPROVAL = re.compile(
    r"(?:(?P<count>\d{1,9})(?::(?P<digest>[0-9a-f]{12}))?|(?P<only>[0-9a-f]{12}))"
)


@dataclasses.dataclass(frozen=True, slots=True)
class Approval:
    """An operator's approval of held deactivations (R7): the count, the digest of the held
    set, or both. A count alone approves the set the last run held, if it is this one."""

    count: int | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> Approval:
        """`N`, `DIGEST` or `N:DIGEST` (what a held run's report says to pass)."""
        found = _APPROVAL.fullmatch(text.strip())
        if found is None:
            raise ValueError(
                f"expected N, N:DIGEST or DIGEST (12 hex digits, shown with the held "
                f"deactivations), got {text!r}"
            )
        count = found.group("count")
        return cls(int(count) if count is not None else None,
                   found.group("digest") or found.group("only"))

    def __str__(self) -> str:
        if self.count is not None and self.digest:
            return f"{self.count}:{self.digest}"
        return str(self.count) if self.count is not None else str(self.digest)
