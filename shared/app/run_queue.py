"""Queue adapter: run requests on an Azure Storage queue (Azurite locally).

`POST /api/sync` puts one message per requested run here; the queue-triggered worker
(`sync_queue`) runs it. The connection is the binding's own (`connection=` in
`sync_queue`), read from the same app settings the Functions host reads:

- locally, `EMPLY_SYNC_QUEUE` is a connection string (falling back to
  `EMPLY_SYNC_STORAGE`, then Azurite's development account);
- in Azure, `EMPLY_SYNC_QUEUE__queueServiceUri` with the managed identity
  (`EMPLY_SYNC_QUEUE__credential=managedidentity`, `__clientId`): no key anywhere.

Messages are base64 text: the Functions host's queue trigger decodes base64 by default.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from shared import config
from shared.store.keys import expand_connection_string

QUEUE_NAME = config.RUN_QUEUE_NAME
POISON_QUEUE_NAME = f"{QUEUE_NAME}-poison"


class RunQueue:
    """The run-request queue; use as `async with`. Creates the queue on first use."""

    def __init__(self, client: QueueClient, *, credential: Any = None) -> None:
        self._client = client
        self._credential = credential
        self._ready = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        await self._client.close()
        if self._credential is not None:
            await self._credential.close()

    async def _ensure(self) -> None:
        if self._ready:
            return
        with contextlib.suppress(ResourceExistsError):
            await self._client.create_queue()
        self._ready = True

    async def send(self, request: Mapping[str, Any], *, delay_seconds: int = 0) -> None:
        """Put one run request; invisible for `delay_seconds` (a retry later)."""
        await self._ensure()
        await self._client.send_message(json.dumps(request, separators=(",", ":")),
                                        visibility_timeout=delay_seconds or None)


def open_run_queue(environ: Mapping[str, str] | None = None, *,
                   queue_name: str = QUEUE_NAME) -> RunQueue:
    """The queue the app settings describe (see the module's docstring)."""
    env = os.environ if environ is None else environ
    encode, decode = TextBase64EncodePolicy(), TextBase64DecodePolicy()
    conn = env.get(config.RUN_QUEUE_CONNECTION)
    uri = env.get(config.RUN_QUEUE_SERVICE_URI)
    if not conn and uri:
        credential = _credential(env)
        return RunQueue(QueueClient(uri, queue_name, credential=credential,
                                    message_encode_policy=encode,
                                    message_decode_policy=decode), credential=credential)
    conn = (conn or env.get(config.STORAGE_CONNECTION_STRING)
            or config.AZURITE_DEV_CONNECTION_STRING)
    return RunQueue(QueueClient.from_connection_string(
        expand_connection_string(conn), queue_name, message_encode_policy=encode,
        message_decode_policy=decode))


def _credential(env: Mapping[str, str]) -> Any:
    """The identity the binding uses: with `__credential=managedidentity`, that managed
    identity (`__clientId` for a user-assigned one), as the host does; else the default
    chain (a developer's az login against a real account)."""
    from azure.identity.aio import DefaultAzureCredential, ManagedIdentityCredential

    client_id = env.get(config.RUN_QUEUE_CLIENT_ID) or None
    if (env.get(config.RUN_QUEUE_CREDENTIAL) or "").lower() == "managedidentity":
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential(managed_identity_client_id=client_id)
