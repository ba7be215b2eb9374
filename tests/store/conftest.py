"""One Azurite per test session; each test gets a store with its own prefix."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from shared.store import EmplyStore, open_store
from tests.support.azurite import AzuriteProcess, start_azurite, unique_prefix


@pytest.fixture(scope="session")
def azurite() -> Iterator[AzuriteProcess]:
    with start_azurite() as process:
        yield process


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@pytest.fixture
async def store(azurite: AzuriteProcess, prefix: str) -> AsyncIterator[EmplyStore]:
    async with open_store(connection_string=azurite.connection_string, prefix=prefix) as s:
        yield s
