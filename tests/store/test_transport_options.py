"""The Storage clients trust the environment (proxies, netrc) only when it sets some:
aiohttp otherwise looks both up on a thread for every request."""

from __future__ import annotations

from pathlib import Path

from shared.store import transport_options


def test_nothing_set_means_the_environment_is_not_consulted(tmp_path: Path) -> None:
    assert transport_options({"HOME": str(tmp_path), "NO_PROXY": "localhost"}) == {
        "use_env_settings": False}


def test_a_proxy_or_a_netrc_keeps_the_environment_trusted(tmp_path: Path) -> None:
    assert transport_options({"HOME": str(tmp_path), "HTTPS_PROXY": "http://proxy:3128"}) == {}
    assert transport_options({"HOME": str(tmp_path), "https_proxy": "http://proxy:3128"}) == {}
    (tmp_path / ".netrc").write_text("machine example.com login a password b\n")
    assert transport_options({"HOME": str(tmp_path)}) == {}
    other = tmp_path / "elsewhere"
    other.write_text("machine example.com login a password b\n")
    assert transport_options({"HOME": "/nonexistent", "NETRC": str(other)}) == {}
