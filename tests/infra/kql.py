"""Every KQL query the project ships, and the telemetry names each one uses.

Queries come from the log alerts (infra/modules/alerts.bicep, with the Bicep
variables and parameter defaults they interpolate filled in), the workbook
(infra/workbooks/*.workbook.json) and the `kusto` blocks of docs/operations.md.
No KQL engine runs here: what a test can check without Azure is that every
message, customDimensions field and compared value a query names is one the code
really emits (tests/e2e/test_telemetry_queries.py).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from tests.infra import bicep

ALERTS = bicep.INFRA / "modules" / "alerts.bicep"
WORKBOOKS = sorted((bicep.INFRA / "workbooks").glob("*.workbook.json"))
OPERATIONS = bicep.REPO / "docs" / "operations.md"

_MESSAGE = re.compile(r'message\s*==\s*"([^"]+)"')
_MESSAGE_IN = re.compile(r"message\s+in\s*\(([^)]*)\)")
_FIELD = re.compile(r"customDimensions(?:\.(\w+)|\[\s*\"(\w+)\"\s*\])")
_STRING = re.compile(r'"([^"]*)"')
# `status == "x"`, `status != "x"`, `status in ("x", "y")`; same for reason, trigger,
# phase, outcome.
# Also `tostring(customDimensions.reason) == "x"`.
_COMPARED = re.compile(
    r"\b(status|reason|trigger|phase|outcome)\)?\s*(?:==|!=|=~|!in|in)\s*(\([^)]*\)|\"[^\"]*\")"
)


@dataclasses.dataclass(frozen=True)
class Query:
    source: str
    text: str

    @property
    def messages(self) -> set[str]:
        found = set(_MESSAGE.findall(self.text))
        for group in _MESSAGE_IN.findall(self.text):
            found |= set(_STRING.findall(group))
        return found

    @property
    def fields(self) -> set[str]:
        return {a or b for a, b in _FIELD.findall(self.text)}

    @property
    def compared(self) -> dict[str, set[str]]:
        values: dict[str, set[str]] = {}
        for column, operand in _COMPARED.findall(self.text):
            values.setdefault(column, set()).update(_STRING.findall(operand))
        return values


def _bicep_string(value: str) -> str:
    return value.replace("\\n", "\n").replace("\\'", "'")


def alert_queries() -> list[Query]:
    doc = bicep.parse(ALERTS)
    names = {name: v["value"] for name, v in doc["variables"].items()
             if isinstance(v["value"], str)}
    names |= {name: str(p["default"]) for name, p in doc["parameters"].items()
              if p.get("default") is not None}
    queries = []
    for rule in bicep.resources(doc, "Microsoft.Insights/scheduledQueryRules"):
        for criterion in rule["config"]["properties"]["criteria"]["allOf"]:
            text = re.sub(r"\$\{(\w+)\}", lambda m: names[m[1]], criterion["query"])
            queries.append(Query(f"alerts.bicep:{rule['config']['name']}", _bicep_string(text)))
    return queries


def workbook_queries() -> list[Query]:
    queries = []
    for path in WORKBOOKS:
        for item in json.loads(path.read_text())["items"]:
            if item["type"] == 3:  # a KQL query item
                queries.append(Query(f"{path.name}:{item['name']}", item["content"]["query"]))
    return queries


def docs_queries(path: Path = OPERATIONS) -> list[Query]:
    """The page's `kusto` blocks; a block that starts from the page's `runs` helper
    (defined once, to paste in front) is checked with the helper in front."""
    blocks = re.findall(r"```kusto\n(.*?)```", path.read_text(), re.S)
    helper = next((b for b in blocks if b.startswith("let runs =")), "")
    return [
        Query(f"{path.name}#{n}", helper + block if re.search(r"^runs\b", block, re.M) else block)
        for n, block in enumerate(blocks, 1)
    ]


def all_queries() -> list[Query]:
    return [*alert_queries(), *workbook_queries(), *docs_queries()]
