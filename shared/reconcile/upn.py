"""Which userPrincipalNames Graph would refuse for a new user: a pure check.

api/user-post-users.md (microsoftgraph/microsoft-graph-docs-contrib): the UPN is
`alias@domain`, and it "cannot contain accent characters. Only the following characters
are allowed `A - Z`, `a - z`, `0 - 9`, `' . - _ ! # ^ ~`" (for the alias; the domain
must be one of the tenant's verified domains, which the planner checks on its own,
`shared.reconcile.entra_create`). Graph answers any other with 400 `Request_BadRequest`
"Property userPrincipalName is invalid.", so such a UPN is never sent: the write-back
creator refuses it per user (`upn_invalid`), and the planner can use the same check.

Pure: no I/O.
"""

from __future__ import annotations

import string

UPN_INVALID = "upn_invalid"
"""Reason code: an Emply user's e-mail is not a userPrincipalName Graph accepts."""
ALIAS_CHARACTERS = frozenset(string.ascii_letters + string.digits + "'.-_!#^~")


def upn_problem(upn: str) -> str | None:
    """Why Graph would refuse `upn` as a new user's userPrincipalName (words for a
    message), or None when it has the documented form."""
    alias, at, domain = upn.rpartition("@")
    if not at or not alias or not domain:
        return f"{upn!r} is not of the form alias@domain"
    refused = sorted({c for c in alias if c not in ALIAS_CHARACTERS})
    if refused:
        shown = ", ".join(repr(c) for c in refused)
        return (f"the part before '@' of {upn!r} has characters Graph does not allow in a "
                f"userPrincipalName ({shown}); only A-Z, a-z, 0-9 and ' . - _ ! # ^ ~ are")
    return None
