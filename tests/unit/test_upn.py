"""`shared.reconcile.upn`: the userPrincipalNames Graph would refuse (api/user-post-users.md)."""

from __future__ import annotations

import pytest

from shared.reconcile import upn


@pytest.mark.parametrize("name", ["megan.jordan@contoso.com", "O'Brien@contoso.com",
                                  "a-b_c!d#e^f~g.9@contoso.com", "X@contoso.onmicrosoft.com"])
def test_the_documented_alias_characters_pass(name: str) -> None:
    assert upn.upn_problem(name) is None


@pytest.mark.parametrize(("name", "shown"), [
    ("jörg@contoso.com", "'ö'"),
    ("first+tag@contoso.com", "'+'"),
    ("two words@contoso.com", "' '"),
    ("a@b@contoso.com", "'@'"),
    ("ÅSA,ø@contoso.com", "',', 'Å', 'ø'"),
])
def test_other_characters_are_named(name: str, shown: str) -> None:
    problem = upn.upn_problem(name)
    assert problem is not None and f"({shown})" in problem and repr(name) in problem


@pytest.mark.parametrize("name", ["no-at-sign", "@contoso.com", "alias@", ""])
def test_a_upn_without_alias_and_domain_is_refused(name: str) -> None:
    assert "alias@domain" in (upn.upn_problem(name) or "")
