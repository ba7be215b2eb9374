"""Shared helpers: where the Bicep lives, parsed once with pycep-parser."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pycep import BicepParser

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"

# The one file that uses the Microsoft Graph Bicep extension; checkov's bundled
# parser cannot read it, so the checkov run skips it (pycep-parser 0.7.1 can).
GRAPH_FILE = INFRA / "graph-app.bicep"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@functools.cache
def _parser() -> BicepParser:
    """One parser per process: building its Lark grammar costs more than a parse."""
    return BicepParser()


@functools.cache
def parse(path: Path) -> dict[str, Any]:
    """The pycep JSON of one file (raises on a syntax error)."""
    return _parser().parse(file_path=path)


def walk(node: Any) -> Iterator[Any]:
    """Every dict, list and scalar in a pycep document, depth first."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def resources(doc: dict[str, Any], type_: str) -> list[dict[str, Any]]:
    """The resources of one type (nested ones keep an ``@version`` suffix in pycep)."""
    return [
        r
        for r in doc.get("resources", {}).values()
        if str(r.get("type", "")).split("@")[0] == type_
    ]


def app_settings() -> dict[str, Path]:
    """Every app setting name set on a function app in infra/, with its file.

    Reads ``siteConfig.appSettings`` lists of ``{name, value}`` objects and
    ``Microsoft.Web/sites/config`` resources named ``appsettings``.
    """
    found: dict[str, Path] = {}
    for path in bicep_files():
        doc = parse(path)
        for node in walk(doc.get("resources", {})):
            if isinstance(node, dict) and isinstance(node.get("appSettings"), list):
                for item in node["appSettings"]:
                    found[str(item["name"])] = path
        for res in resources(doc, "Microsoft.Web/sites/config"):
            config = res.get("config", {})
            if config.get("name") == "appsettings":
                for name in config.get("properties", {}):
                    found[str(name).strip("'")] = path
    return found
