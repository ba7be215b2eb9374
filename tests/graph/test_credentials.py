"""Which credential and pipeline create_graph_client picks (no network)."""

from __future__ import annotations

import asyncio
import ssl

import pytest
from azure.identity.aio import ClientAssertionCredential, DefaultAzureCredential
from kiota_http.kiota_client_factory import KiotaClientFactory
from kiota_http.middleware import RedirectHandler, RetryHandler

from shared import config
from shared.graph import client as graph_client
from shared.graph import credentials, middleware

FEDERATED_ENV = {
    config.GRAPH_CLIENT_ID: "app-client-id",
    config.GRAPH_TENANT_ID: "7d3c1f0e-5b2a-4c8e-9f10-0a1b2c3d4e5f",
    config.MANAGED_IDENTITY_CLIENT_ID: "mi-client-id",
}


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8123/v1.0", "http://localhost:9/v1.0", "http://[::1]:8123/v1.0"],
)
async def test_loopback_uses_the_simulator_token(url: str) -> None:
    credential = credentials.create_credential(url, FEDERATED_ENV)
    assert isinstance(credential, credentials.StaticTokenCredential)
    token = await credential.get_token("https://graph.microsoft.com/.default")
    assert token.token == config.SIMULATOR_TOKEN


async def test_app_settings_select_the_federated_credential() -> None:
    credential = credentials.create_credential(config.DEFAULT_GRAPH_URL, FEDERATED_ENV)
    try:
        assert isinstance(credential, credentials.FederatedCredential)
        assert isinstance(credential, ClientAssertionCredential)
        assert credential.assertion.managed_identity_client_id == "mi-client-id"
    finally:
        await credential.close()


async def test_federated_without_managed_identity_client_id() -> None:
    env = {k: v for k, v in FEDERATED_ENV.items() if k != config.MANAGED_IDENTITY_CLIENT_ID}
    credential = credentials.create_credential(config.DEFAULT_GRAPH_URL, env)
    try:
        assert isinstance(credential, credentials.FederatedCredential)
        assert credential.assertion.managed_identity_client_id is None
    finally:
        await credential.close()


@pytest.mark.parametrize(
    "env",
    [
        {},
        {config.GRAPH_CLIENT_ID: "app-client-id"},
        {config.GRAPH_TENANT_ID: "tenant"},
        {config.GRAPH_CLIENT_ID: " ", config.GRAPH_TENANT_ID: "tenant"},
    ],
)
async def test_otherwise_default_azure_credential(env: dict[str, str]) -> None:
    credential = credentials.create_credential(config.DEFAULT_GRAPH_URL, env)
    try:
        assert isinstance(credential, DefaultAzureCredential)
    finally:
        await credential.close()


async def test_graph_client_for_real_graph() -> None:
    graph = graph_client.create_graph_client(None, env=FEDERATED_ENV)
    try:
        assert graph.graph_url == config.DEFAULT_GRAPH_URL
        assert graph.adapter.base_url == config.DEFAULT_GRAPH_URL
        assert isinstance(graph.credential, credentials.FederatedCredential)
        assert graph.retry == middleware.GRAPH_RETRY_POLICY
        assert graph.absolute_url("/users/delta") == "https://graph.microsoft.com/v1.0/users/delta"
    finally:
        await graph.aclose()


async def test_graph_url_from_env() -> None:
    env = {config.GRAPH_URL: "http://127.0.0.1:5555/v1.0/"}
    graph = graph_client.create_graph_client(env=env)
    try:
        assert graph.graph_url == "http://127.0.0.1:5555/v1.0"
        assert isinstance(graph.credential, credentials.StaticTokenCredential)
        assert graph.retry == middleware.SIMULATOR_RETRY_POLICY
    finally:
        await graph.aclose()


def test_plain_http_only_for_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        graph_client.create_graph_client("http://graph.example.com/v1.0", env={})


def test_default_middleware_with_bounded_retry_and_counter() -> None:
    chain = graph_client._middleware_chain(
        middleware.GraphStats(), "/v1.0", middleware.GRAPH_RETRY_POLICY
    )
    kinds = [type(m) for m in chain]
    assert kinds[0] is RedirectHandler
    assert kinds[1] is middleware.BoundedRetryHandler and issubclass(kinds[1], RetryHandler)
    assert kinds[-1] is middleware.StatsMiddleware
    assert len(chain) == 9  # msgraph-core's 8 + the counter


async def test_every_client_verifies_tls_with_one_context_and_kiotas_defaults() -> None:
    kiota = KiotaClientFactory.get_default_client()
    first, second = graph_client._http_client(None), graph_client._http_client(None)
    try:
        context = graph_client._tls_context()
        assert context is graph_client._tls_context()  # the CA bundle is loaded once
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert first.timeout == second.timeout == kiota.timeout
    finally:
        await asyncio.gather(first.aclose(), second.aclose(), kiota.aclose())
