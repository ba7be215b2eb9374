"""Who may call: with Entra ID authentication on, the caller's token must carry the app role.

App Service authentication (infra's `emplyClientAppId`) validates the token (issuer,
audience, Emply's app id) before a request reaches the app, and passes the caller's
claims in the `X-MS-CLIENT-PRINCIPAL` header (base64 JSON; the front end strips any
such header a client sends). It has no rule for app roles, so the role is checked
here: `EMPLY_SYNC_REQUIRED_ROLE` set, a request without that role in its `roles`
claims is refused (403). Unset or empty (function keys only), nothing is checked.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping

from shared import config

PRINCIPAL_HEADER = "x-ms-client-principal"
ROLE_CLAIM_TYPES = frozenset({"roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"})


def required_role(environ: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if environ is None else environ
    return (env.get(config.REQUIRED_ROLE) or "").strip() or None


def roles(headers: Mapping[str, str]) -> frozenset[str]:
    """The app roles in the principal App Service authentication passed on (none when
    there is no header or it cannot be read)."""
    raw = headers.get(PRINCIPAL_HEADER)
    if not raw:
        return frozenset()
    try:
        principal = json.loads(base64.b64decode(raw, validate=True))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return frozenset()
    claims = principal.get("claims") if isinstance(principal, dict) else None
    if not isinstance(claims, list):
        return frozenset()
    return frozenset(str(c.get("val")) for c in claims
                     if isinstance(c, dict) and c.get("typ") in ROLE_CLAIM_TYPES)


def refusal(headers: Mapping[str, str], environ: Mapping[str, str] | None = None) -> str | None:
    """Why the caller may not call (a message naming the role), or None when it may."""
    role = required_role(environ)
    if role is None or role in roles(headers):
        return None
    return f"the caller's token does not carry the app role {role!r}"
