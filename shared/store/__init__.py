"""Emply adapter: the Emply side and the sync's own state in Azure Storage.

`open_store(...)` gives an `EmplyStore` (an async context manager), the Azure
implementation of the protocols in `shared.store.protocols` (what the service
depends on); see `shared.store.azure_store` for the layout and `shared.store.errors` for
the errors.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Mapping
from typing import Any

from aiohttp import helpers as aiohttp_helpers
from azure.data.tables.aio import TableServiceClient
from azure.storage.blob.aio import BlobServiceClient

from shared import config
from shared.emply.document import DocumentError
from shared.store.azure_store import Clock, EmplyStore
from shared.store.errors import ConcurrentChangeError, LeaseLost, RunInProgress, StoreError
from shared.store.keys import expand_connection_string

__all__ = [
    "ConcurrentChangeError",
    "DocumentError",
    "EmplyStore",
    "LeaseLost",
    "RunInProgress",
    "StoreError",
    "open_store",
    "open_store_from_environment",
]


def transport_options() -> dict[str, Any]:
    """Keyword arguments for the Storage clients' transport. aiohttp told to trust the
    environment looks up the proxy settings and the netrc file again, each on a thread
    of its own, for every request (measured: about a fifth of a churn run's CPU); so the
    clients trust it only when it has something to say: a proxy, or a netrc file
    (found as aiohttp finds them)."""
    proxies = {scheme for scheme in urllib.request.getproxies() if scheme != "no"}
    if proxies or aiohttp_helpers.netrc_from_env() is not None:
        return {}
    return {"use_env_settings": False}


def open_store(
    *,
    connection_string: str | None = None,
    table_endpoint: str | None = None,
    blob_endpoint: str | None = None,
    credential: Any = None,
    prefix: str = "",
    clock: Clock | None = None,
) -> EmplyStore:
    """An `EmplyStore` over a connection string or identity-based endpoints.

    Locally: a connection string (`UseDevelopmentStorage=true` is expanded to
    Azurite's explicit development account). In Azure: `table_endpoint` and
    `blob_endpoint` plus an azure-identity async credential (default:
    `DefaultAzureCredential`, which honours AZURE_CLIENT_ID for a user-assigned
    managed identity). `prefix` (lowercase letters and digits) is put before
    every table and container name so tests can share one account.
    """
    if connection_string:
        conn = expand_connection_string(connection_string)
        options = transport_options()
        return EmplyStore(TableServiceClient.from_connection_string(conn, **options),
                          BlobServiceClient.from_connection_string(conn, **options),
                          prefix=prefix, clock=clock)
    if not (table_endpoint and blob_endpoint):
        raise ValueError("give a connection string, or both table and blob endpoints")
    owned = None
    if credential is None:
        from azure.identity.aio import DefaultAzureCredential

        credential = owned = DefaultAzureCredential()
    options = transport_options()
    return EmplyStore(TableServiceClient(endpoint=table_endpoint, credential=credential,
                                         **options),
                      BlobServiceClient(account_url=blob_endpoint, credential=credential,
                                        **options),
                      prefix=prefix, clock=clock, credential=owned)


def open_store_from_environment(environ: Mapping[str, str] | None = None, *,
                                connection_string: str | None = None) -> EmplyStore:
    """The store the app settings describe: connection string (explicit argument,
    then EMPLY_SYNC_STORAGE), else identity-based endpoints, else local Azurite."""
    env = os.environ if environ is None else environ
    conn = connection_string or env.get(config.STORAGE_CONNECTION_STRING)
    table = env.get(config.STORAGE_TABLE_ENDPOINT)
    blob = env.get(config.STORAGE_BLOB_ENDPOINT)
    if not conn and table and blob:
        return open_store(table_endpoint=table, blob_endpoint=blob)
    return open_store(connection_string=conn or config.AZURITE_DEV_CONNECTION_STRING)
