"""What every test shares: the two tiers of the suite and one Azurite per test process.

Tiers. `make check` (the edit loop, under a minute) runs every test *not* marked
`integration`; `make test` runs every test, spread over worker processes by
pytest-xdist. A test is `integration` when it needs Azurite or starts a child process
(Node's Azurite, the command line as a real process, checkov, git). It is marked:
- automatically: every test under tests/e2e/ and tests/reliability/, and every test
  that uses the `azurite` fixture, directly or through another fixture;
- by hand anywhere else: `@pytest.mark.integration` on the test (or
  `pytest.param(..., marks=pytest.mark.integration)` on a fixture's parameter).
Enforced: a test that is not marked and starts a child process fails at once, saying
so, in `make check` and `make test` alike; so `make check` never waits on one.

Workers. Each xdist worker is its own process with its own session fixtures: its own
Azurite (started the first time a test there asks for it) and its own simulators, so
tests that wipe storage never see another worker's data. Tests marked `slow` are
handed out first, so the longest ones run beside the short ones instead of last.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from tests.support.azurite import AzuriteProcess, start_azurite

# No per-example deadline: properties check behaviour, not speed (speed is the benches'
# job), and on a shared machine one slow example must not fail a correct property.
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")

TESTS = Path(__file__).resolve().parent
# Folders whose every test drives the real command line or HTTP handlers on Azurite.
INTEGRATION_FOLDERS = ("e2e", "reliability")
# Audit events that start another process (sys.audit's names for them).
SPAWN_EVENTS = frozenset({"subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn",
                          "os.exec", "os.fork", "os.forkpty"})


class _Children:
    """Whether the test now running may start a child process (set around each test)."""

    test: str | None = None


# The standard library's own probes run a command once per process, from whichever test
# first imports a library that asks (azure-identity's user agent: platform's `uname -p`):
# not a child of the test's making.
STDLIB_PROBES = frozenset({"platform", "ctypes.util", "uuid"})


def _stdlib_probe() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_globals.get("__name__") in STDLIB_PROBES:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def _refuse_unmarked_children(event: str, args: tuple[Any, ...]) -> None:
    if event in SPAWN_EVENTS and _Children.test is not None and not _stdlib_probe():
        raise RuntimeError(
            f"{_Children.test} starts a child process ({event} {args[0]!r}) but is not "
            "marked `integration`: mark it (@pytest.mark.integration) so that `make check` "
            "leaves it out (tests/conftest.py)")


sys.addaudithook(_refuse_unmarked_children)


def _integration(item: pytest.Item) -> bool:
    folder = Path(str(item.path)).relative_to(TESTS).parts[0]
    fixtures: list[str] = getattr(item, "fixturenames", [])
    return folder in INTEGRATION_FOLDERS or "azurite" in fixtures


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _integration(item):
            item.add_marker(pytest.mark.integration)
    # Stable sort: slow tests first, each group in collection order (every xdist worker
    # collects the same order, as xdist requires).
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    marked = item.get_closest_marker("integration") is not None
    _Children.test = None if marked else item.nodeid
    try:
        return (yield)
    finally:
        _Children.test = None


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteProcess]:
    """One Azurite for this test process (under xdist: for this worker)."""
    with start_azurite() as process:
        yield process
