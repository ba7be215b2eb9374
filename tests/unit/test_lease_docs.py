"""The lease length is one number: the code's, and the one README and docs/ give."""

from __future__ import annotations

from pathlib import Path

from shared.run import lease
from shared.store import azure_store

ROOT = Path(__file__).resolve().parents[2]


def test_docs_give_the_lease_length_the_code_uses() -> None:
    assert lease.LEASE_TTL_SECONDS == azure_store.LEASE_TTL_SECONDS == 300
    seconds = f"{lease.LEASE_TTL_SECONDS} s"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    operations = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    assert seconds in readme and seconds in operations
    renewal = f"every {lease.LEASE_TTL_SECONDS // 3} s"
    assert renewal in readme and renewal in operations
    for text in (readme, operations):
        assert "15 minutes after it" not in text and "15 min lease" not in text
