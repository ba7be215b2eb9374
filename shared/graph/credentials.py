"""Which credential the Graph adapter uses, chosen from the Graph URL and settings.

- A loopback URL (``http://127.0.0.1``, ``localhost``, ``[::1]``) is the Graph
  simulator: a fixed bearer token (:data:`shared.config.SIMULATOR_TOKEN`) that
  is never sent anywhere else (the auth provider's allowed hosts are the
  loopback host alone).
- ``EMPLY_SYNC_GRAPH_CLIENT_ID`` and ``EMPLY_SYNC_GRAPH_TENANT_ID`` set: the
  app registration is reached with a *client assertion*, the managed
  identity's token for ``api://AzureADTokenExchange`` (a federated identity
  credential: no secret anywhere).
- Otherwise ``DefaultAzureCredential`` (developer sign-in, environment, or
  managed identity).

Selection needs no network: constructing a credential never requests a token.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.identity import ManagedIdentityCredential as SyncManagedIdentityCredential
from azure.identity.aio import ClientAssertionCredential, DefaultAzureCredential

from shared import config

TOKEN_EXCHANGE_SCOPE = "api://AzureADTokenExchange/.default"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(url: str) -> bool:
    """True for an http(s) URL whose host is the local machine."""
    # Exactly the hosts Kiota's auth provider accepts over plain http.
    return (urlsplit(url).hostname or "").lower() in LOOPBACK_HOSTS


def graph_scopes(graph_url: str) -> list[str]:
    """``https://graph.microsoft.com/.default`` (or the national cloud's own host)."""
    host = urlsplit(graph_url).hostname or "graph.microsoft.com"
    return [f"https://{host}/.default"]


class StaticTokenCredential(AsyncTokenCredential):
    """Always the same bearer token: the simulator's (or a wrong one, in tests)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return AccessToken(self._token, int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> StaticTokenCredential:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        return None


class ManagedIdentityAssertion:
    """The client assertion for the federated credential: the managed identity's
    token for ``api://AzureADTokenExchange``.

    azure-identity's async ``ClientAssertionCredential`` calls its ``func``
    synchronously, so this uses the synchronous ``ManagedIdentityCredential``;
    it caches the token, so the event loop blocks only when the token is
    refreshed (about once an hour).
    """

    def __init__(self, managed_identity_client_id: str | None) -> None:
        self.managed_identity_client_id = managed_identity_client_id
        self.credential = SyncManagedIdentityCredential(client_id=managed_identity_client_id)

    def __call__(self) -> str:
        token: str = self.credential.get_token(TOKEN_EXCHANGE_SCOPE).token
        return token

    def close(self) -> None:
        self.credential.close()


class FederatedCredential(ClientAssertionCredential):
    """``ClientAssertionCredential`` that also closes the managed identity it uses."""

    def __init__(self, tenant_id: str, client_id: str, assertion: ManagedIdentityAssertion) -> None:
        super().__init__(tenant_id, client_id, assertion)
        self.assertion = assertion

    async def close(self) -> None:
        await super().close()
        self.assertion.close()


def create_credential(graph_url: str, env: Mapping[str, str]) -> AsyncTokenCredential:
    """The credential for ``graph_url`` given the settings in ``env`` (see module doc)."""
    if is_loopback(graph_url):
        return StaticTokenCredential(config.SIMULATOR_TOKEN)
    client_id = env.get(config.GRAPH_CLIENT_ID, "").strip()
    tenant_id = env.get(config.GRAPH_TENANT_ID, "").strip()
    managed_identity = env.get(config.MANAGED_IDENTITY_CLIENT_ID, "").strip() or None
    if client_id and tenant_id:
        return FederatedCredential(tenant_id, client_id, ManagedIdentityAssertion(managed_identity))
    return DefaultAzureCredential(managed_identity_client_id=managed_identity)
