"""Each test gets a store with its own prefix on the process's Azurite (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.store import EmplyStore, open_store
from tests.support.azurite import AzuriteProcess, unique_prefix


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@pytest.fixture
async def store(azurite: AzuriteProcess, prefix: str) -> AsyncIterator[EmplyStore]:
    async with open_store(connection_string=azurite.connection_string, prefix=prefix) as s:
        yield s
