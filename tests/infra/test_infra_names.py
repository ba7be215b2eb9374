"""Resource names fit Azure's rules for every environment name main.bicep accepts,
and two deployments never share a name that must be unique (function app host
name, Entra app registration).

The names are computed from main.bicep's own expressions (pycep-parser's tree plus
the `${...}` interpolations it leaves as text), with the Bicep functions they use
(`toLower`, `replace`, `take`, `uniqueString`) implemented here.
"""

from __future__ import annotations

import hashlib
import re
import types
from typing import Any

import pytest

from tests.infra import bicep

MAIN = bicep.parse(bicep.INFRA / "main.bicep")
ENV_MAX = 40

# Azure's naming rules for the resources whose names carry the environment name
# (Azure resource naming rules, per resource provider).
RULES: dict[str, tuple[int, int, str]] = {
    "function app": (2, 60, r"[a-z0-9][a-z0-9-]*[a-z0-9]"),
    "plan": (1, 60, r"[A-Za-z0-9-]+"),
    "storage": (3, 24, r"[a-z0-9]+"),
    "log analytics": (4, 63, r"[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]"),
    "app insights": (1, 260, r"[^%&\\?/]+"),
    "managed identity": (3, 128, r"[A-Za-z0-9][A-Za-z0-9_-]*"),
    "alert name prefix": (1, 200, r"[A-Za-z0-9][A-Za-z0-9-]*"),
}

ENVIRONMENTS = [
    "a",
    "prod",
    "Prod_EU.2",
    "x" * ENV_MAX,
    "staging-" + "y" * (ENV_MAX - 8),
    "a" * 29 + "-" + "b" * 10,
]


def unique_string(*parts: str) -> str:
    """Deterministic 13 lower-case characters, like ARM's uniqueString."""
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return "".join("abcdefghijklmnopqrstuvwxyz234567"[b % 32] for b in digest[:13])


FUNCTIONS = {
    "toLower": str.lower,
    "replace": lambda s, old, new: s.replace(old, new),
    "take": lambda s, n: s[:n],
    "uniqueString": unique_string,
}
PYCEP_FUNCTIONS = {
    "to_lower": lambda p: p["string_to_change"].lower(),
    "replace": lambda p: p["original_string"].replace(p["old_string"], p["new_string"]),
    "take": lambda p: p[next(iter(p))][: p[list(p)[1]]],
    "unique_string": lambda p: unique_string(*(str(v) for v in p.values())),
}


class Deployment:
    """Evaluates main.bicep's names for one environment name and resource group."""

    def __init__(self, environment: str, resource_group: str = "rg-emply") -> None:
        self.scope = {
            "environmentName": environment,
            "subscription": lambda: types.SimpleNamespace(id="/subscriptions/s1"),
            "resourceGroup": lambda: types.SimpleNamespace(
                id=f"/subscriptions/s1/resourceGroups/{resource_group}", name=resource_group
            ),
        }

    def value(self, node: Any) -> Any:
        if isinstance(node, str):
            if node in MAIN["variables"]:
                return self.value(MAIN["variables"][node]["value"])
            if node in MAIN["parameters"] and node not in self.scope:
                return self.value(MAIN["parameters"][node]["default"])
            if node in self.scope:
                return self.scope[node]
            return re.sub(r"\$\{([^}]*)\}", lambda m: str(self.expr(m[1])), node)
        if isinstance(node, dict) and "operator" in node:
            operator = node["operator"]
            assert operator["type"] == "property_accessor", operator
            operands = operator["operands"]
            return getattr(self.value(operands["operand_1"]), operands["operand_2"])
        if isinstance(node, dict) and "function" in node:
            fn = node["function"]
            if fn["type"] in {"subscription", "resource_group"}:
                return self.scope[{"resource_group": "resourceGroup"}.get(fn["type"], fn["type"])]()
            params = {k: self.value(v) for k, v in fn["parameters"].items() if v is not None}
            return PYCEP_FUNCTIONS[fn["type"]](params)
        return node

    def expr(self, text: str) -> Any:
        """A Bicep expression inside `${...}`: Python reads the shapes used here alike."""
        names = dict(FUNCTIONS)
        for name in re.findall(r"[A-Za-z_]\w*", text):
            if name not in names and name not in {"id", "name"}:
                names[name] = self.value(name)
        return eval(text, {"__builtins__": {}}, names)

    def module_param(self, module: str, param: str) -> str:
        return str(self.value(MAIN["modules"][module]["config"]["params"][param]))

    def names(self) -> dict[str, str]:
        return {
            "function app": self.module_param("functionApp", "name"),
            "plan": self.module_param("functionApp", "planName"),
            "storage": self.module_param("storage", "name"),
            "log analytics": self.module_param("monitoring", "logAnalyticsName"),
            "app insights": self.module_param("monitoring", "appInsightsName"),
            "managed identity": str(self.value(MAIN["resources"]["identity"]["config"]["name"])),
            "alert name prefix": self.module_param("alerts", "namePrefix"),
        }

    def app_registration(self) -> str:
        return str(self.value("appRegistrationName"))


def test_environment_name_limit_is_the_one_checked_here() -> None:
    decorators = {d["type"]: d.get("argument") for d in
                  MAIN["parameters"]["environmentName"]["decorators"]}
    assert decorators["max_length"] == ENV_MAX
    assert decorators["min_length"] == 1


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_name_fits_its_resource_rules(environment: str) -> None:
    names = Deployment(environment).names()
    assert set(names) == set(RULES)
    for kind, name in names.items():
        low, high, pattern = RULES[kind]
        assert low <= len(name) <= high, f"{kind} {name!r}: {len(name)} characters"
        assert re.fullmatch(pattern, name), f"{kind} {name!r} breaks {pattern}"


def test_the_longest_function_app_name_is_within_60_characters() -> None:
    name = Deployment("z" * ENV_MAX).names()["function app"]
    assert len(name) == 59
    assert name.startswith("func-emplysync-")


@pytest.mark.parametrize("environment", ["prod", "x" * ENV_MAX])
def test_two_deployments_of_one_environment_name_get_their_own_names(environment: str) -> None:
    first, second = Deployment(environment, "rg-a"), Deployment(environment, "rg-b")
    assert first.app_registration() != second.app_registration()
    assert first.names()["function app"] != second.names()["function app"]
    assert first.names()["storage"] != second.names()["storage"]


def test_app_registration_name_names_the_environment() -> None:
    name = Deployment("Prod_EU").app_registration()
    assert re.fullmatch(r"emply-entra-sync-prod-eu-[a-z0-9]{13}", name), name


def test_evaluator_reads_the_expressions_it_is_given() -> None:
    # Guards against an evaluator that silently leaves `${...}` unexpanded.
    for environment in ENVIRONMENTS:
        for name in [*Deployment(environment).names().values(),
                     Deployment(environment).app_registration()]:
            assert "${" not in name and "(" not in name, name
