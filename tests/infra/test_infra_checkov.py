"""checkov (Bicep framework) passes on infra/ with zero failed checks.

checkov lives in its own virtualenv (`.venv-checkov`, pinned in
requirements-checkov.txt) because its dependency pins conflict with the app's.
Suppressions are `// checkov:skip=CKV_...:reason` comments inside the resource
they concern, and every one must carry its reason.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest

from tests.infra import bicep
from tests.support.once import once_per_run

CHECKOV = bicep.REPO / ".venv-checkov" / "bin" / "checkov"
SKIP_COMMENT = re.compile(r"checkov:skip=([A-Za-z0-9_-]+)(:?)(.*)")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> dict[str, Any]:
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV}: run `make setup`")
    # Once per run: the tests that read the report may land on two xdist workers.
    output = once_per_run(tmp_path_factory, worker_id, "checkov", _checkov)
    try:
        result = json.loads(output)
    except json.JSONDecodeError:
        pytest.fail(f"checkov produced no JSON:\n{output[-3000:]}")
    # One framework gives one report; several would give a list.
    reports = result if isinstance(result, list) else [result]
    (bicep_report,) = [r for r in reports if r.get("check_type") == "bicep"]
    return bicep_report  # type: ignore[no-any-return]


def _checkov() -> str:
    """checkov's JSON report of infra/ (or, when it gives none, its exit code and stderr)."""
    skip = bicep.GRAPH_FILE.relative_to(bicep.INFRA).as_posix()
    command = [
        str(CHECKOV),
        "--framework",
        "bicep",
        "--skip-download",
        "--directory",
        str(bicep.INFRA),
        "--skip-path",
        skip,
        "--quiet",
        "--compact",
        "--output",
        "json",
    ]
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}  # no Prisma Cloud id-mapping download
    done = subprocess.run(
        command, cwd=bicep.REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    return done.stdout if done.stdout.strip() else f"exit {done.returncode}:\n{done.stderr}"


@pytest.mark.integration
@pytest.mark.slow
def test_checkov_finds_no_failed_check(report: dict[str, Any]) -> None:
    failed = [
        f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range']}): "
        f"{c['check_name']}"
        for c in report["results"]["failed_checks"]
    ]
    assert not failed, "checkov failed checks:\n" + "\n".join(failed)
    assert report["summary"]["failed"] == 0


@pytest.mark.integration
@pytest.mark.slow
def test_checkov_parsed_every_file_and_checked_something(report: dict[str, Any]) -> None:
    # A file checkov cannot parse is silently unchecked: that is a failure too.
    assert report["summary"]["parsing_errors"] == 0
    assert report["summary"]["resource_count"] > 0
    assert report["summary"]["passed"] > 0


def test_every_suppression_carries_its_reason() -> None:
    missing = []
    for path in bicep.bicep_files():
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = SKIP_COMMENT.search(line)
            if match and (not match.group(2) or len(match.group(3).strip()) < 10):
                missing.append(f"{path.relative_to(bicep.REPO)}:{number}: {line.strip()}")
    assert not missing, "suppressions without a reason:\n" + "\n".join(missing)
