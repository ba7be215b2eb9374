"""requirements.txt is a lock: what a remote build installs is what the tests ran with.

Azure's remote build runs `pip install -r requirements.txt`. A file that pins only
the direct dependencies lets every transitive one float to whatever is newest on
the day of the deployment; this test holds requirements.txt to the whole resolved
set of pyproject.toml's dependencies (`make lock` makes it with pip-compile), each
pinned to the version installed in the environment these tests run in.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.infra import bicep

LOCK = bicep.REPO / "requirements.txt"
DEV = bicep.REPO / "requirements-dev.txt"
PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!-]+)")


def _lines(path: Path) -> list[str]:
    text = path.read_text()
    return [line.split("#", 1)[0].strip() for line in text.splitlines()
            if line.split("#", 1)[0].strip()]


def lock_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in _lines(LOCK):
        match = PIN.fullmatch(line)
        assert match, f"requirements.txt: {line!r} is not an exact `name==version` pin"
        name = canonicalize_name(match[1])
        assert name not in pins, f"requirements.txt pins {name} twice"
        pins[name] = match[2]
    return pins


def direct_dependencies() -> list[Requirement]:
    project = tomllib.loads((bicep.REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(spec) for spec in project["dependencies"]]


def resolved_closure() -> set[str]:
    """Every distribution the direct dependencies need here (markers evaluated for this
    interpreter, extras followed), from the installed distributions' own metadata."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in direct_dependencies()]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for spec in metadata.distribution(name).requires or ():
            req = Requirement(spec)
            wanted = req.marker is None or any(
                req.marker.evaluate({"extra": extra}) for extra in {"", *extras}
            )
            if wanted:
                todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return {name for name, _ in seen}


def test_requirements_txt_is_exact_pins_only() -> None:
    # No index URL, find-links, path or editable install: nothing machine-specific.
    assert lock_pins()


def test_the_lock_holds_the_whole_resolved_set_and_nothing_else() -> None:
    pins, needed = set(lock_pins()), resolved_closure()
    assert needed - pins == set(), f"needed but not pinned: {sorted(needed - pins)}"
    assert pins - needed == set(), f"pinned but not needed: {sorted(pins - needed)}"


def test_every_pin_is_the_version_the_tests_run_with() -> None:
    wrong = {
        name: (version, metadata.version(name))
        for name, version in lock_pins().items()
        if metadata.version(name) != version
    }
    assert not wrong, f"requirements.txt pin vs installed (run `make setup`): {wrong}"


def test_direct_dependencies_are_listed_without_versions() -> None:
    # Versions live in the lock only, so the two never disagree.
    for req in direct_dependencies():
        assert not req.specifier, f"pyproject.toml pins {req}: pin in requirements.txt instead"


def test_dev_requirements_build_on_the_lock() -> None:
    lines = _lines(DEV)
    assert lines[0] == "-r requirements.txt"
    pins = lock_pins()
    for line in lines[1:]:
        match = PIN.fullmatch(line)
        assert match, f"requirements-dev.txt: {line!r} is not an exact pin"
        assert canonicalize_name(match[1]) not in pins, f"{line} re-pins a locked package"


def test_the_lock_says_how_it_is_made() -> None:
    assert "make lock" in LOCK.read_text()
    makefile = (bicep.REPO / "Makefile").read_text()
    assert re.search(r"^lock:", makefile, re.M)
    assert "pip-compile" in makefile and "pyproject.toml" in makefile
