"""No file of the repository carries a leftover merge-conflict marker.

A marker in the README or a doc parses and runs fine, so nothing else would catch it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^(<{7}|>{7})( |$)|^={7}$", re.M)


@pytest.mark.integration
def test_no_tracked_text_file_has_a_conflict_marker() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    assert len(files) > 100  # the listing worked
    found = []
    for name in files:
        path = ROOT / name
        if not path.is_file() or path.suffix in {".png", ".gz"}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{name}:{text.count(chr(10), 0, m.start()) + 1}" for m in MARKER.finditer(text)]
    assert found == []


@pytest.mark.integration
def test_no_installed_tree_or_machine_link_is_tracked() -> None:
    """node_modules and the virtual environments are made by `make setup` on each machine;
    a tracked copy or link (e.g. to this machine's checkout) breaks a clean clone."""
    files = subprocess.run(["git", "ls-files", "-s"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert len(files) > 100  # the listing worked
    installed = [line.split("\t", 1)[1] for line in files
                 if line.split("\t", 1)[1].split("/")[0] in {"node_modules", ".venv",
                                                               ".venv-checkov", ".venv-lock"}]
    links = [line.split("\t", 1)[1] for line in files if line.startswith("120000 ")]
    assert installed == [] and links == []
