"""Every Bicep file parses with pycep-parser, and the template keeps its promises:
no secret, no shared key, every resource the app uses, least Graph privilege."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared import config
from shared.app import run_queue
from shared.store import mailbox_state
from tests.infra import bicep

BICEP_FILES = bicep.bicep_files()

# Microsoft Graph application permissions (app role ids are the same in every
# tenant; from the Microsoft Graph permissions reference).
USER_READ_ALL = "df021288-bdef-4463-88db-98f22de89214"
GROUP_MEMBER_READ_ALL = "98830695-27a2-44f7-8c18-0c3ebc9698f6"
ORGANIZATION_READ_ALL = "498476ce-e0fe-48b0-b801-37ba7e2685c6"
CALENDARS_READ_WRITE = "ef54d2bf-783f-4e0f-bca1-3210c0444d99"
CALENDARS_READ_BASIC_ALL = "8ba4a692-bc31-4128-9094-475872af8a53"  # replaced by ReadWrite
PROFILE_PHOTO_READ_ALL = "e24d31aa-e1ab-4c80-85fe-23018690335d"
USER_READ_WRITE_ALL = "741f803b-c850-494e-b5df-cde7c675a1ca"
GROUP_MEMBER_READ_WRITE_ALL = "dbaae8cf-10b5-4b86-a4a1-f871c94c6695"
GROUP_READ_ALL = "5b567255-7703-4780-807c-7be8301ae99b"
ALWAYS = {USER_READ_ALL, GROUP_MEMBER_READ_ALL, ORGANIZATION_READ_ALL}


def test_the_template_files_exist() -> None:
    names = {p.relative_to(bicep.INFRA).as_posix() for p in BICEP_FILES}
    assert {"main.bicep", "graph-app.bicep"} <= names
    assert (bicep.INFRA / "main.parameters.json").is_file()
    assert (bicep.REPO / "azure.yaml").is_file()


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: p.relative_to(bicep.INFRA).as_posix())
def test_bicep_parses(path: Path) -> None:
    doc = bicep.parse(path)
    # A parse that found nothing means the grammar skipped the file's body.
    assert doc.get("resources") or doc.get("modules"), f"{path}: no resources or modules"


def test_every_module_file_is_used_and_exists() -> None:
    referenced: set[Path] = set()
    for path in BICEP_FILES:
        for module in bicep.parse(path).get("modules", {}).values():
            target = (path.parent / module["detail"]["path"]).resolve()
            assert target.is_file(), f"{path.name} references missing module {target}"
            referenced.add(target)
    orphans = {p for p in BICEP_FILES if p.name != "main.bicep"} - referenced
    assert not orphans, f"Bicep files no module references: {sorted(map(str, orphans))}"


def test_only_graph_app_uses_the_graph_extension() -> None:
    # checkov skips graph-app.bicep; anything else with the extension would
    # make checkov fail to parse it (and so go unchecked).
    users = {p for p in BICEP_FILES if bicep.parse(p).get("extensions")}
    assert users == {bicep.GRAPH_FILE}
    config = json.loads((bicep.INFRA / "bicepconfig.json").read_text())
    assert "microsoftGraphV1" in config["extensions"]


@pytest.mark.parametrize(
    "pattern",
    [
        r"listKeys\(",
        r"AccountKey=",
        r"InstrumentationKey",
        r"passwordCredentials",
        r"keyCredentials",
        r"addPassword",
        r"EMPLY_SYNC_STORAGE\b",
    ],
)
def test_no_secret_anywhere_in_infra(pattern: str) -> None:
    hits = [
        f"{p.relative_to(bicep.REPO)}:{n}"
        for p in BICEP_FILES
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(pattern, line)
    ]
    assert not hits, f"{pattern!r} found in {hits}"


def _storage() -> dict[str, Any]:
    doc = bicep.parse(bicep.INFRA / "modules" / "storage.bicep")
    (account,) = bicep.resources(doc, "Microsoft.Storage/storageAccounts")
    return {"doc": doc, "props": account["config"]["properties"]}


def test_storage_is_identity_only() -> None:
    props = _storage()["props"]
    assert props["allowSharedKeyAccess"] is False
    assert props["allowBlobPublicAccess"] is False
    assert props["supportsHttpsTrafficOnly"] is True
    assert props["minimumTlsVersion"] == "TLS1_2"


def _defaults(doc: dict[str, Any], param: str) -> set[str]:
    return set(doc["parameters"][param]["default"])


def test_storage_has_every_table_and_container_the_app_uses() -> None:
    doc = _storage()["doc"]
    assert _defaults(doc, "tableNames") == {"emply", "runs", "synclease", "changefeed",
                                            mailbox_state.TABLE}
    assert _defaults(doc, "containerNames") == {"syncstate", "runreports", "photos"}
    assert _defaults(doc, "queueNames") == {run_queue.QUEUE_NAME, run_queue.POISON_QUEUE_NAME,
                                            config.NOTIFY_QUEUE_NAME,
                                            f"{config.NOTIFY_QUEUE_NAME}-poison",
                                            config.MAILBOX_QUEUE_NAME,
                                            f"{config.MAILBOX_QUEUE_NAME}-poison"}


def test_app_insights_and_workspace_have_local_auth_off() -> None:
    doc = bicep.parse(bicep.INFRA / "modules" / "monitoring.bicep")
    (ai,) = bicep.resources(doc, "Microsoft.Insights/components")
    assert ai["config"]["properties"]["DisableLocalAuth"] is True
    (ws,) = bicep.resources(doc, "Microsoft.OperationalInsights/workspaces")
    assert ws["config"]["properties"]["features"]["disableLocalAuth"] is True


def test_function_app_is_flex_consumption_python_with_identity_deployment() -> None:
    doc = bicep.parse(bicep.INFRA / "modules" / "function-app.bicep")
    (plan,) = bicep.resources(doc, "Microsoft.Web/serverfarms")
    assert plan["config"]["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    (site,) = bicep.resources(doc, "Microsoft.Web/sites")
    props = site["config"]["properties"]
    assert props["httpsOnly"] is True
    fac = props["functionAppConfig"]
    assert fac["runtime"] == {"name": "python", "version": "3.11"}
    assert fac["deployment"]["storage"]["authentication"]["type"] == "UserAssignedIdentity"
    assert site["config"]["identity"]["type"] == "UserAssigned"


def test_identity_gets_data_roles_only() -> None:
    doc = bicep.parse(bicep.INFRA / "modules" / "roles.bicep")
    roles = doc["variables"]["roles"]["value"]
    assert set(roles.values()) == {
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",  # Storage Blob Data Owner
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",  # Storage Table Data Contributor
        "3913510d-42f4-4e42-8a64-420c390055eb",  # Monitoring Metrics Publisher
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",  # Storage Queue Data Contributor
    }
    assignments = bicep.resources(doc, "Microsoft.Authorization/roleAssignments")
    assert len(assignments) == len(roles)


# --- Graph permissions --------------------------------------------------------


def _evaluate(node: Any, names: dict[str, Any]) -> Any:
    """Evaluate the few pycep expression shapes the grant list uses."""
    if isinstance(node, str):
        return names.get(node, node)
    if isinstance(node, list):
        return [_evaluate(item, names) for item in node]
    if "function" in node and node["function"]["type"] == "concat":
        args = node["function"]["parameters"]
        return [item for key in sorted(args) for item in _evaluate(args[key], names)]
    operator = node["operator"]
    operands = operator["operands"]
    if operator["type"] == "property_accessor":
        return _evaluate(operands["operand_1"], names)[operands["operand_2"]]
    if operator["type"] == "conditional":
        branch = "true_value" if names[operands["condition"]] else "false_value"
        return _evaluate(operands[branch], names)
    raise AssertionError(f"unexpected expression {node}")


def _granted(calendar: bool = False, photo: bool = False, write_back: bool = False,
             create: bool = False, notifications: bool = False) -> set[str]:
    doc = bicep.parse(bicep.GRAPH_FILE)
    names: dict[str, Any] = {
        "graphAppRoles": doc["variables"]["graphAppRoles"]["value"],
        "featureAppRoles": doc["variables"]["featureAppRoles"]["value"],
        "enableCalendarSync": calendar,
        "enablePhotoSync": photo,
        "enableWriteBack": write_back,
        "enableWriteBackCreate": create,
        "enableNotifications": notifications,
    }
    granted = _evaluate(doc["variables"]["grantedAppRoles"]["value"], names)
    assert len(granted) == len(set(granted))
    return set(granted)


def test_graph_permission_ids_are_the_real_ones() -> None:
    doc = bicep.parse(bicep.GRAPH_FILE)
    assert doc["variables"]["graphAppRoles"]["value"] == {
        "userReadAll": USER_READ_ALL,
        "groupMemberReadAll": GROUP_MEMBER_READ_ALL,
        "organizationReadAll": ORGANIZATION_READ_ALL,
    }


# Every feature switch grants what its built feature reads or writes with: write-back
# update, delete and create (R9), calendar sync's calendars (R13), photo sync (R16).
# Change notifications subscribe to /groups, which needs Group.Read.All (issue 22).
FEATURES = {"photoSync", "writeBack", "writeBackCreate", "calendarSync", "notifications"}


def test_feature_switches_grant_only_what_is_built() -> None:
    doc = bicep.parse(bicep.GRAPH_FILE)
    features = doc["variables"]["featureAppRoles"]["value"]
    assert set(features) == FEATURES
    assert features["photoSync"] == [PROFILE_PHOTO_READ_ALL]
    assert features["notifications"] == [GROUP_READ_ALL]
    text = bicep.GRAPH_FILE.read_text()
    # Replaced by Calendars.ReadWrite (R15 creates events): named nowhere as a grant.
    assert f"'{CALENDARS_READ_BASIC_ALL}'" not in text


@pytest.mark.parametrize(
    "flags",
    [
        {},
        {"calendar": True},
        {"photo": True},
        {"write_back": True},
        {"create": True},
        {"write_back": True, "create": True},
        {"calendar": True, "photo": True, "write_back": True},
        {"notifications": True},
        {"notifications": True, "create": True},
    ],
)
def test_graph_permissions_are_only_what_the_code_uses_whatever_the_switches(
    flags: dict[str, bool],
) -> None:
    # Least privilege: read-only roles unless write-back is switched on (R9).
    # GroupMember.ReadWrite.All only for create (the new user joins the first group).
    writes = {USER_READ_WRITE_ALL} if flags.get("write_back") or flags.get("create") else set()
    if flags.get("create"):
        writes.add(GROUP_MEMBER_READ_WRITE_ALL)
    # Calendar sync lists calendars and creates events (R13, R15): Calendars.ReadWrite only.
    calendars = {CALENDARS_READ_WRITE} if flags.get("calendar") else set()
    photos = {PROFILE_PHOTO_READ_ALL} if flags.get("photo") else set()
    # Group subscriptions (change notifications) need Group.Read.All, only then.
    groups = {GROUP_READ_ALL} if flags.get("notifications") else set()
    assert _granted(**flags) == ALWAYS | writes | calendars | photos | groups


def test_feature_switches_are_described_with_what_they_grant() -> None:
    for path in (bicep.GRAPH_FILE, bicep.INFRA / "main.bicep"):
        params = bicep.parse(path)["parameters"]
        (photo,) = [d["argument"] for d in params["enablePhotoSync"]["decorators"]
                    if d["type"] == "description"]
        assert "grants ProfilePhoto.Read.All" in photo and "Reserved" not in photo
        (write_back,) = [d["argument"] for d in params["enableWriteBack"]["decorators"]
                         if d["type"] == "description"]
        assert "User.ReadWrite.All" in write_back
        (create,) = [d["argument"] for d in params["enableWriteBackCreate"]["decorators"]
                     if d["type"] == "description"]
        assert "GroupMember.ReadWrite.All" in create
        (calendar,) = [d["argument"] for d in params["enableCalendarSync"]["decorators"]
                       if d["type"] == "description"]
        assert "grants Calendars.ReadWrite" in calendar
        (notify,) = [d["argument"] for d in params["enableNotifications"]["decorators"]
                     if d["type"] == "description"]
        assert "Group.Read.All" in notify


def test_main_passes_the_notification_switch_to_the_app_registration() -> None:
    text = (bicep.INFRA / "main.bicep").read_text()
    block = text[text.index("module graphApp"):]
    block = block[:block.index("\n}\n")]
    assert "enableNotifications: enableNotifications" in block


def test_graph_grants_and_declared_permissions_use_the_same_list() -> None:
    doc = bicep.parse(bicep.GRAPH_FILE)
    (grants,) = bicep.resources(doc, "Microsoft.Graph/appRoleAssignedTo")
    assert grants["config"]["loop_type"]["detail"]["array_name"] == "grantedAppRoles"
    (app,) = bicep.resources(doc, "Microsoft.Graph/applications")
    (access,) = app["config"]["requiredResourceAccess"]
    assert access["resourceAccess"]["loop_type"]["detail"]["array_name"] == "grantedAppRoles"


def test_app_registration_has_only_the_federated_credential() -> None:
    doc = bicep.parse(bicep.GRAPH_FILE)
    (fic,) = bicep.resources(doc, "Microsoft.Graph/applications/federatedIdentityCredentials")
    config = fic["config"]
    assert config["audiences"] == ["api://AzureADTokenExchange"]
    assert config["subject"] == "managedIdentityPrincipalId"
    text = bicep.GRAPH_FILE.read_text()
    assert "/v2.0'" in text and "tenant().tenantId" in text


def test_parameters_file_matches_main_bicep() -> None:
    params = bicep.parse(bicep.INFRA / "main.bicep")["parameters"]
    given = json.loads((bicep.INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(given) <= set(params), f"unknown parameters: {sorted(set(given) - set(params))}"
    required = {name for name, p in params.items() if p.get("default") is None}
    assert required <= set(given), f"required parameters azd cannot fill: {required - set(given)}"
