"""The lease length is one number: the code's, and the one docs/ gives (rules, reliability,
operations)."""

from __future__ import annotations

from pathlib import Path

from shared.run import lease
from shared.store import azure_store

ROOT = Path(__file__).resolve().parents[2]


def test_docs_give_the_lease_length_the_code_uses() -> None:
    assert lease.LEASE_TTL_SECONDS == azure_store.LEASE_TTL_SECONDS == 300
    seconds = f"{lease.LEASE_TTL_SECONDS} s"
    pages = [(ROOT / "docs" / name).read_text(encoding="utf-8")
             for name in ("rules.md", "reliability.md", "operations.md")]
    renewal = f"every {lease.LEASE_TTL_SECONDS // 3} s"
    for text in pages:
        assert seconds in text and renewal in text
        assert "15 minutes after it" not in text and "15 min lease" not in text
