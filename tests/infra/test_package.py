"""What the deployment package holds: `.funcignore` leaves development tooling out.

The zip Azure Functions deploys is the repository minus what `.funcignore` names
(gitignore syntax). These tests apply those patterns to the tracked files and check
that the Graph simulator, tests, benchmarks and caches stay out, and that nothing
left in imports what was left out.
"""

from __future__ import annotations

import ast
import fnmatch
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _patterns() -> list[str]:
    lines = (ROOT / ".funcignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    """gitignore matching as far as .funcignore uses it: `dir/` patterns match a
    directory at any depth, other patterns match any path component (or the path)."""
    parts = path.split("/")
    for pattern in patterns:
        if pattern.endswith("/"):
            if any(fnmatch.fnmatch(part, pattern[:-1]) for part in parts[:-1]):
                return True
        elif fnmatch.fnmatch(path, pattern) or any(
            fnmatch.fnmatch(part, pattern) for part in parts
        ):
            return True
    return False


def _tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    return [line for line in out.splitlines() if (ROOT / line).exists()]


def _deployed() -> list[str]:
    patterns = _patterns()
    return [path for path in _tracked() if not _ignored(path, patterns)]


@pytest.mark.integration
def test_development_tooling_is_not_deployed() -> None:
    patterns = _patterns()
    deployed = _deployed()
    for tooling in ("graph_simulator/", "tests/", "bench/", "demo/", "scripts/", "infra/"):
        assert not [p for p in deployed if p.startswith(tooling)], tooling
    for generated in ("shared/__pycache__/service.cpython-311.pyc",
                      "emply_entra_sync.egg-info/PKG-INFO", "node_modules/azurite/package.json",
                      ".venv/bin/python", ".venv-checkov/bin/python"):
        assert _ignored(generated, patterns), generated


@pytest.mark.integration
def test_the_app_itself_is_deployed() -> None:
    deployed = set(_deployed())
    for needed in ("function_app.py", "host.json", "requirements.txt",
                   "shared/run/pipeline.py", "shared/cli.py", "sync_timer/__init__.py",
                   "sync_queue/__init__.py", "webhook_http/__init__.py"):
        assert needed in deployed, needed


@pytest.mark.integration
def test_nothing_deployed_imports_what_is_left_out() -> None:
    left_out = {"graph_simulator", "tests", "bench", "scripts"}
    offenders = []
    for path in _deployed():
        if not path.endswith(".py"):
            continue
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"), path)
        for node in ast.walk(tree):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [(path, n) for n in names if n.split(".")[0] in left_out]
    # The CLI's `simulator` command imports the simulator by name at run time instead.
    assert offenders == []


HTTP_AREAS = {"sync_routes", "operators", "emply_document", "settings", "roles", "users",
              "employees", "outbound_events", "changes", "notifications", "openapi_route",
              "user_sync"}


def test_function_app_only_registers_the_blueprints() -> None:
    """import-linter takes packages only; the one top-level module is checked here: it
    imports the timer and queue blueprints and one blueprint per HTTP area, registers
    each of them once, and does nothing else."""
    tree = ast.parse((ROOT / "function_app.py").read_text(encoding="utf-8"))
    imported = {(node.module, alias.name) if isinstance(node, ast.ImportFrom)
                else (alias.name, None)
                for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
                for alias in node.names}
    assert imported == {("azure.functions", None), ("sync_timer", "bp"), ("sync_queue", "bp"),
                        *(("webhook_http", area) for area in HTTP_AREAS)}
    registered = [ast.unparse(call.args[0]) for call in ast.walk(tree)
                  if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute)
                  and call.func.attr == "register_functions"]
    assert sorted(registered) == sorted(["timer_bp", "queue_bp",
                                         *(f"{area}.bp" for area in HTTP_AREAS)])
    statements = [type(node).__name__ for node in tree.body]
    assert set(statements) <= {"Expr", "Import", "ImportFrom", "Assign"}
