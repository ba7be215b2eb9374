"""`emply-sync simulator`: the CLI command of the development venv, and its message
where the simulator is not installed (the deployed package leaves it out)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from shared import cli
from shared.config import SIMULATOR_TOKEN
from tests.simulator.conftest import base_tenant

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_cli_serves_the_tenant_in_the_dev_venv(tmp_path: Path) -> None:
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(base_tenant()))
    # Outside the repository, so the simulator comes from the venv's install, not the cwd.
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "simulator", "--tenant", str(path)],
        stdout=subprocess.PIPE, text=True, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("Graph simulator listening on http://127.0.0.1:"), line
        url = line.removeprefix("Graph simulator listening on ")
        response = httpx.get(f"{url}/organization",
                             headers={"Authorization": f"Bearer {SIMULATOR_TOKEN}"})
        assert response.status_code == 200
        proc.terminate()
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_cli_says_so_when_the_simulator_is_not_installed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # None in sys.modules makes `import graph_simulator` fail as if it were absent.
    monkeypatch.setitem(sys.modules, "graph_simulator", None)
    assert cli.main(["simulator", "--tenant", "tenant.json"]) == 2
    err = capsys.readouterr().err
    assert "not installed here" in err
    assert err.count("\n") == 1
