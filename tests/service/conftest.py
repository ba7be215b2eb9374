"""What the service tests share: the Graph client they run on.

`graph`: the real msgraph-sdk pipeline over the simulator's handlers in-process (no
socket), for a module that defines its own `sim` fixture (its tenant). A module whose
simulator runs as a process defines `graph` itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from graph_simulator.inprocess import InProcessTransport
from graph_simulator.state import Simulator
from shared.graph import client as graph_client

URL = "http://127.0.0.1:1/v1.0"
"""Never dialled: the transport answers in-process."""


@pytest.fixture
async def graph(sim: Simulator) -> AsyncIterator[graph_client.GraphClient]:
    client = graph_client.create_graph_client(URL, env={}, transport=InProcessTransport(sim))
    try:
        yield client
    finally:
        await client.aclose()
