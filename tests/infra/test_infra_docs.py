"""docs/deploy.md and docs/operations.md say what the template and the code do."""

from __future__ import annotations

import json
import re

from tests.infra import bicep

DEPLOY = (bicep.REPO / "docs" / "deploy.md").read_text()
OPERATIONS = (bicep.REPO / "docs" / "operations.md").read_text()



def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def _code_strings() -> set[str]:
    found: set[str] = set()
    for path in (bicep.REPO / "shared").rglob("*.py"):
        found |= set(re.findall(r"\"([a-z][a-z_]+)\"", path.read_text()))
    return found


def test_deploy_names_the_minimum_versions_the_repository_declares() -> None:
    extension = json.loads((bicep.INFRA / "bicepconfig.json").read_text())["extensions"]
    assert extension["microsoftGraphV1"] in DEPLOY
    assert "Bicep CLI 0.36.1" in DEPLOY
    azure_yaml = (bicep.REPO / "azure.yaml").read_text()
    (azd_min,) = re.findall(r'azd: ">= ([0-9.]+)"', azure_yaml)
    assert f"(azd) {azd_min}" in DEPLOY
    assert "AZURE_RESOURCE_GROUP" in DEPLOY


def test_deploy_says_what_the_template_does_not_undo() -> None:
    assert "does not revoke a granted permission" in DEPLOY
    assert "appRoleAssignments/<assignment id>" in DEPLOY
    assert "`azd down` leaves the app registration" in DEPLOY
    assert "az ad app delete" in DEPLOY
    switches = _section(DEPLOY, "### Photo and calendar switches")
    assert "`enablePhotoSync`" in switches and "ProfilePhoto.Read.All" in switches
    assert "`enableCalendarSync`" in switches and "Calendars.ReadWrite" in switches
    assert "reserved" not in switches.lower()


def test_deploy_lists_group_read_all_for_group_subscriptions() -> None:
    # Issue 22 item 3: a /groups subscription needs Group.Read.All.
    (row,) = [line for line in DEPLOY.splitlines() if line.startswith("| Group.Read.All |")]
    assert "`5b567255-7703-4780-807c-7be8301ae99b`" in row and "`enableNotifications`" in row
    assert "Group.Read.All" in bicep.GRAPH_FILE.read_text()


def test_deploy_says_which_write_back_toggle_needs_which_parameter() -> None:
    # Issue 14 item 8: least privilege, and a missing permission reported once.
    section = _section(DEPLOY, "### Write-back needs `enableWriteBack`")
    assert "`writeBack.update` | `enableWriteBack=true` | User.ReadWrite.All" in section
    assert "`graph_write_forbidden`" in section and "not once per user" in section
    assert "`hybrid_tenant`" in section


def test_deploy_promises_nothing_the_code_does_not_do() -> None:
    # No feature this version lacks is described as working (issue 11 item 9).
    for claim in ("calendar sync works", "refused in hybrid"):
        assert claim not in DEPLOY, claim


def test_operations_lists_only_reason_codes_and_kinds_the_code_produces() -> None:
    produced = _code_strings()
    listed = set(re.findall(r"`([a-z]+(?:_[a-z]+)+)`",
                            _section(OPERATIONS, "## Reason codes")))
    kinds = _section(OPERATIONS, "### Changes by kind over time")
    listed |= set(re.findall(r"`([a-z]+_[a-z_]+)`", kinds.split("The kinds", 1)[1]))
    assert "not_configured" in listed and "create_user" in listed
    assert listed - produced == set(), f"documented but never produced: {listed - produced}"
