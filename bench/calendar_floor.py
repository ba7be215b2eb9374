"""The Graph floor of a no-change calendar run: ``python -m bench.calendar_floor STORAGE
GRAPH_URL`` (run by `bench.calendars` after its no-change run).

What any run must at least do to ask Graph what a no-change run asks: send the same
`$batch`es (every synced user's calendar list, every mirrored calendar's stored delta
link, 20 items a batch, 16 in flight, as the mailbox gate does) and parse each answer
with ``json.loads``; nothing else: no gate, no planning, no Table reads or writes (the
index and the delta links are read before the clock starts). Twice, in one fresh
process: through the product's Graph client (`GraphClient.post_json`: msgraph-sdk's
request adapter, auth provider and middleware, the path every run takes), then through a
bare httpx client with the same limits (no SDK). Prints one JSON line: per path the
batches, the items answered 200, wall and CPU seconds.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from shared import config
from shared.app import boundary
from shared.graph import client as graph_client
from shared.graph import events, mailbox_gate, mailboxes
from shared.run.mailboxes import passes
from shared.run.mailboxes.state import MailboxState
from shared.store import keys

Body = dict[str, Any]
Post = Callable[[Body], Awaitable[Body]]


async def batches(deps: boundary.Deps) -> list[Body]:
    """The `$batch` bodies of a no-change run: the calendar lists, then the delta links."""
    states = deps.store.mailbox_states()
    index = await passes.read_index(states)
    users = sorted(s.entra_id for bucket in index.values() for s in bucket.values())
    raw = await states.read_states(keys.ALL_BUCKETS[0], keys.ALL_BUCKETS[-1])
    links = sorted(k.link for v in raw.values() if (state := MailboxState.from_json(v))
                   for c in state.calendars.values() if (k := c.known) and k.link)
    base = deps.graph.graph_url
    items = [{"method": "GET", "url": mailboxes.first_page(u)} for u in users] + [
        {"method": "GET", "headers": events.PREFER, "url": link.removeprefix(base)}
        for link in links]
    size = mailbox_gate.BATCH_SIZE
    return [{"requests": [{"id": str(n), **item}
                          for n, item in enumerate(items[i:i + size])]}
            for i in range(0, len(items), size)]


async def send_all(bodies: list[Body], post: Post) -> dict[str, Any]:
    """Every body posted, `DEFAULT_BATCHES` in flight; the answers parsed and counted."""
    flying = asyncio.Semaphore(mailbox_gate.DEFAULT_BATCHES)
    answered = 0

    async def one(body: Body) -> None:
        nonlocal answered
        async with flying:
            answer = await post(body)
        answered += sum(r.get("status") == 200 for r in answer.get("responses", ()))

    wall0, cpu0 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(b) for b in bodies))
    return {"batches": len(bodies), "itemsOk": answered,
            "wallSeconds": round(time.perf_counter() - wall0, 3),
            "cpuSeconds": round(time.process_time() - cpu0, 3)}


async def bare_httpx(graph_url: str, bodies: list[Body]) -> dict[str, Any]:
    """The same batches through httpx alone (the simulator's token, no SDK)."""
    headers = {"Authorization": f"Bearer {config.SIMULATOR_TOKEN}",
               "Content-Type": "application/json", "Accept": "application/json"}
    async with httpx.AsyncClient(limits=graph_client._LIMITS, http2=True,
                                 timeout=graph_client._TIMEOUT) as http:
        async def post(body: Body) -> Body:
            response = await http.post(f"{graph_url}/$batch", headers=headers,
                                       content=json.dumps(body).encode())
            response.raise_for_status()
            parsed: Body = json.loads(response.content)
            return parsed

        return await send_all(bodies, post)


async def main_async(storage: str, graph_url: str) -> dict[str, Any]:
    async with boundary.open_deps(storage=storage, graph_url=graph_url, environ={}) as deps:
        bodies = await batches(deps)
        sdk = await send_all(bodies, lambda body: deps.graph.post_json("/$batch", body))
    return {"sdk": sdk, "httpx": await bare_httpx(graph_url, bodies)}


def main() -> None:
    print(json.dumps(asyncio.run(main_async(sys.argv[1], sys.argv[2]))))


if __name__ == "__main__":
    main()
