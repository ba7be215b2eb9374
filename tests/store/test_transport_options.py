"""The Storage clients trust the environment (proxies, netrc) only when it sets some:
aiohttp otherwise looks both up on a thread for every request."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.store import transport_options

PROXIES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
           "all_proxy")


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An environment with no proxy and no netrc file; the home to put one in."""
    for name in PROXIES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("NETRC", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_nothing_set_means_the_environment_is_not_consulted(
        bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "localhost")
    assert transport_options() == {"use_env_settings": False}


def test_a_proxy_keeps_the_environment_trusted(
        bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert transport_options() == {}


def test_a_netrc_keeps_the_environment_trusted(
        bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (bare / ".netrc").write_text("machine example.com login a password b\n")
    assert transport_options() == {}
    (bare / ".netrc").unlink()
    other = bare / "elsewhere"
    other.write_text("machine example.com login a password b\n")
    monkeypatch.setenv("NETRC", str(other))
    assert transport_options() == {}
