"""The app settings infra/ sets on the function app match what the code reads.

`shared/config.py` names every setting the code reads. This test fails when:
- infra/ sets a different list than `shared.config.APP_SETTINGS` (plus the
  Functions host's own settings below);
- code reads a setting through `shared.config` that infra/ does not set (the
  local-only connection string `EMPLY_SYNC_STORAGE` excepted);
- infra/ sets an `EMPLY_SYNC_*` setting no code reads;
- code outside `shared/config.py` names a setting with a string literal
  (`os.environ["X"]`, `os.getenv("X")`, `env.get("X")`, or any literal that
  looks like one of our setting names), bypassing the single list.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path

from shared import config
from tests.infra import bicep

# Read by the Functions host, never by our code.
HOST_SETTINGS = {
    # Identity-based AzureWebJobsStorage with the user-assigned identity.
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    # Entra-authenticated telemetry from the host (App Insights local auth off).
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
# Connection strings: Azurite locally; in Azure storage and the queue use the identity.
LOCAL_ONLY = {config.STORAGE_CONNECTION_STRING, config.RUN_QUEUE_CONNECTION}

CODE_ROOTS = ("shared", "sync_timer", "sync_queue", "webhook_http", "function_app.py")
CONFIG_FILE = bicep.REPO / "shared" / "config.py"

# An identity-based connection's parts are NAME__camelCase (as the Functions host names them).
SETTING_NAME = re.compile(r"[A-Z][A-Z0-9_]*(__[a-z][A-Za-z]*)?")
SETTING_LITERAL = re.compile(
    r"(EMPLY_SYNC_\w+|AZURE_[A-Z0-9_]+|APPLICATIONINSIGHTS_\w+|AzureWebJobs\w*|FUNCTIONS_\w+|WEBSITE_\w+)"
)
ENV_NAMES = re.compile(r"(?i)(.*_)?(env|environ|environment|settings_env)")


def setting_constants() -> dict[str, str]:
    """`shared.config` constants whose value is a setting name (not a URL or token)."""
    return {
        name: value
        for name, value in vars(config).items()
        if name.isupper() and isinstance(value, str) and SETTING_NAME.fullmatch(value)
    }


def code_files() -> list[Path]:
    files: list[Path] = []
    for root in CODE_ROOTS:
        path = bicep.REPO / root
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(sorted(path.rglob("*.py")))
    return [f for f in files if f != CONFIG_FILE]


def config_references(tree: ast.AST) -> Iterator[tuple[str, int]]:
    """Names of `shared.config` attributes a module uses, however it imports it."""
    module_aliases: set[str] = set()
    dotted = False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "shared":
            module_aliases |= {a.asname or a.name for a in node.names if a.name == "config"}
        elif isinstance(node, ast.ImportFrom) and node.module == "shared.config":
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "shared.config":
                    if alias.asname:
                        module_aliases.add(alias.asname)
                    else:
                        dotted = True
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        if (isinstance(owner, ast.Name) and owner.id in module_aliases) or (
            dotted
            and isinstance(owner, ast.Attribute)
            and owner.attr == "config"
            and isinstance(owner.value, ast.Name)
            and owner.value.id == "shared"
        ):
            yield node.attr, node.lineno


def _is_env(node: ast.expr) -> bool:
    """`os.environ`, `environ`, `env`, `self.env`… (and `os` for `os.getenv`)."""
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return bool(ENV_NAMES.fullmatch(name))


def literal_setting_uses(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """String literals used as setting names outside shared/config.py."""
    for node in ast.walk(tree):
        key: ast.expr | None = None
        if isinstance(node, ast.Subscript) and _is_env(node.value):
            key = node.slice
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            if (
                isinstance(func, ast.Attribute)
                and (
                    (func.attr in {"get", "pop", "setdefault"} and _is_env(func.value))
                    or func.attr in {"getenv", "putenv", "unsetenv"}
                )
            ) or (isinstance(func, ast.Name) and func.id == "getenv"):
                key = node.args[0]
        elif isinstance(node, ast.Compare) and any(_is_env(c) for c in node.comparators):
            key = node.left
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            yield node.lineno, f"environment read with literal {key.value!r}"
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and SETTING_LITERAL.fullmatch(node.value)
        ):
            yield node.lineno, f"setting name literal {node.value!r}"


def code_reads() -> dict[str, list[str]]:
    """Setting name -> where code reads it through `shared.config`."""
    constants = setting_constants()
    reads: dict[str, list[str]] = {}
    for path in code_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for attr, line in config_references(tree):
            if attr in constants:
                reads.setdefault(constants[attr], []).append(
                    f"{path.relative_to(bicep.REPO)}:{line}"
                )
    return reads


def infra_settings() -> set[str]:
    found = set(bicep.app_settings())
    assert found, "no appSettings found in infra/*.bicep"
    return found


def test_app_settings_list_holds_only_setting_constants() -> None:
    constants = set(setting_constants().values())
    assert set(config.APP_SETTINGS) <= constants
    assert LOCAL_ONLY.isdisjoint(config.APP_SETTINGS)


def test_infra_sets_exactly_the_app_settings_plus_host_settings() -> None:
    infra = infra_settings()
    app, expected = infra - HOST_SETTINGS, set(config.APP_SETTINGS)
    assert app == expected, (
        f"set by infra/ but not in shared.config.APP_SETTINGS: {sorted(app - expected)}; "
        f"in APP_SETTINGS but not set by infra/: {sorted(expected - app)}"
    )
    assert infra >= HOST_SETTINGS, f"host settings missing: {sorted(HOST_SETTINGS - infra)}"


def test_local_only_connection_string_is_not_set_in_azure() -> None:
    assert LOCAL_ONLY.isdisjoint(infra_settings())


def test_code_reads_no_setting_infra_does_not_set() -> None:
    unset = {
        name: where
        for name, where in code_reads().items()
        if name not in infra_settings() and name not in LOCAL_ONLY
    }
    assert not unset, f"code reads settings infra/ does not set: {unset}"


def test_every_emply_sync_setting_infra_sets_is_read_by_code() -> None:
    reads = code_reads()
    unread = sorted(
        name for name in infra_settings() if name.startswith("EMPLY_SYNC_") and name not in reads
    )
    assert not unread, f"infra/ sets settings no code reads (through shared.config): {unread}"


def test_no_setting_name_literal_outside_config() -> None:
    hits = [
        f"{path.relative_to(bicep.REPO)}:{line}: {what}"
        for path in code_files()
        for line, what in literal_setting_uses(ast.parse(path.read_text(), filename=str(path)))
    ]
    assert not hits, "name settings through shared.config only:\n" + "\n".join(hits)


def test_the_scanner_sees_the_code() -> None:
    # Guards against a scanner that silently finds nothing.
    assert code_files(), "no code files found"
    sample = ast.parse(
        "import os\nfrom shared import config\n"
        "a = os.environ['EMPLY_SYNC_X']\nb = os.getenv('Y')\nc = env.get('Z')\n"
        "d = config.GRAPH_URL\ne = 'EMPLY_SYNC_W' in os.environ\n"
    )
    assert [attr for attr, _ in config_references(sample)] == ["GRAPH_URL"]
    lines = sorted({line for line, _ in literal_setting_uses(sample)})
    assert lines == [3, 4, 5, 7]


# --- the timer schedule and the local settings example ------------------------

LOCAL_EXAMPLE = bicep.REPO / "local.settings.example.json"
# What only the Functions host (Core Tools) reads locally.
LOCAL_HOST_SETTINGS = {"FUNCTIONS_WORKER_RUNTIME", "AzureWebJobsStorage"}
# Set in Azure only: managed identity, identity-based storage endpoints, the app
# registration and App Insights have no local counterpart.
AZURE_ONLY = {
    config.STORAGE_TABLE_ENDPOINT,
    config.STORAGE_BLOB_ENDPOINT,
    config.GRAPH_CLIENT_ID,
    config.GRAPH_TENANT_ID,
    config.MANAGED_IDENTITY_CLIENT_ID,
    config.APPINSIGHTS_CONNECTION_STRING,
    config.RUN_QUEUE_SERVICE_URI,
    config.RUN_QUEUE_CREDENTIAL,
    config.RUN_QUEUE_CLIENT_ID,
}


def _param_default(path: Path, name: str) -> object:
    return bicep.parse(path)["parameters"][name]["default"]


def test_the_schedule_is_the_faqs_30_minutes_by_default_everywhere() -> None:
    assert config.DEFAULT_SYNC_SCHEDULE == "0 */30 * * * *"
    main = bicep.INFRA / "main.bicep"
    assert _param_default(main, "syncSchedule") == config.DEFAULT_SYNC_SCHEDULE
    module = bicep.INFRA / "modules" / "function-app.bicep"
    assert _param_default(module, "syncSchedule") == config.DEFAULT_SYNC_SCHEDULE
    assert bicep.app_settings()[config.SYNC_SCHEDULE] == module
    values = json.loads(LOCAL_EXAMPLE.read_text())["Values"]
    assert values[config.SYNC_SCHEDULE] == config.DEFAULT_SYNC_SCHEDULE


def test_the_timer_binding_reads_the_schedule_setting() -> None:
    import sync_timer

    assert sync_timer.SCHEDULE.strip("%") == config.SYNC_SCHEDULE
    assert sync_timer.SCHEDULE == "%EMPLY_SYNC_SCHEDULE%"


def test_local_settings_example_holds_what_func_start_needs_and_nothing_azure_only() -> None:
    doc = json.loads(LOCAL_EXAMPLE.read_text())
    assert doc["IsEncrypted"] is False
    values = doc["Values"]
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["AzureWebJobsStorage"] == config.AZURITE_DEV_CONNECTION_STRING
    assert values[config.STORAGE_CONNECTION_STRING] == config.AZURITE_DEV_CONNECTION_STRING
    assert values[config.GRAPH_URL].startswith("http://127.0.0.1:")
    known = set(setting_constants().values()) | LOCAL_HOST_SETTINGS
    assert set(values) <= known, f"unknown settings: {sorted(set(values) - known)}"
    assert AZURE_ONLY.isdisjoint(values)
    # Copied to local.settings.json, which stays out of git and out of the package.
    assert "local.settings.json" in (bicep.REPO / ".gitignore").read_text().split()
    ignored = (bicep.REPO / ".funcignore").read_text().split()
    assert {"local.settings.json", LOCAL_EXAMPLE.name} <= set(ignored)
