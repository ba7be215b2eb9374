"""The Graph client: msgraph-sdk's pipeline, plus raw-JSON reads for bulk data.

``create_graph_client`` builds the SDK's ``GraphServiceClient`` on a
``GraphRequestAdapter`` whose httpx client carries msgraph-core's default
middleware (redirect, retry, parameter-name decoding, URL replace, user agent,
header/body inspection, Graph telemetry), with two changes (see
:mod:`shared.graph.middleware`): the retry handler is bounded by a
:class:`~shared.graph.middleware.RetryPolicy`, and a counting middleware sits
next to the transport.

Bulk collections are read with :meth:`GraphClient.get_json`: the same adapter
(auth, retries, telemetry) but the body comes back as bytes and is parsed with
``json.loads``: the SDK's models cost ~1000x more per object. Single objects
may use :attr:`GraphClient.service` (the SDK's own request builders).

Invariants: the bearer token goes only to the configured Graph host (the auth
provider's allowed hosts); plain http is used only for loopback (the
simulator), whose fixed token is used nowhere else.
"""

from __future__ import annotations

import functools
import json
import os
import ssl
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from azure.core.credentials_async import AsyncTokenCredential
from kiota_abstractions.api_error import APIError
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from kiota_http import kiota_client_factory
from kiota_http.kiota_client_factory import KiotaClientFactory
from kiota_http.middleware import RetryHandler
from kiota_http.middleware.middleware import BaseMiddleware
from msgraph import graph_request_adapter
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient

# msgraph-core ships no py.typed marker.
from msgraph_core import GraphClientFactory  # type: ignore[import-untyped]
from msgraph_core.middleware import GraphTelemetryHandler  # type: ignore[import-untyped]
from msgraph_core.middleware.options import (  # type: ignore[import-untyped]
    GraphTelemetryHandlerOption,
)

from shared import config
from shared.graph import credentials, errors, middleware, pacing

# Graph error codes that mean "this delta/skip token is gone: read in full".
DELTA_EXPIRED_CODES = frozenset(
    {"syncStateNotFound", "resyncRequired", "syncStateInvalid", "fullSyncRequired"}
)

_ERROR_MAP: dict[str, Any] = {"XXX": ODataError}
_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100)
_TIMEOUT = httpx.Timeout(kiota_client_factory.DEFAULT_REQUEST_TIMEOUT,
                         connect=kiota_client_factory.DEFAULT_CONNECTION_TIMEOUT)


class GraphClient:
    """One Graph endpoint, its credential, the SDK client and the exchange counters."""

    def __init__(
        self,
        graph_url: str,
        service: GraphServiceClient,
        adapter: GraphRequestAdapter,
        http_client: httpx.AsyncClient,
        credential: AsyncTokenCredential,
        stats: middleware.GraphStats,
        retry: middleware.RetryPolicy,
        owns_credential: bool = True,
        write_pacer: pacing.WritePacer | None = None,
    ) -> None:
        self.graph_url = graph_url
        self.base_path = urlsplit(graph_url).path.rstrip("/")
        self.service = service
        self.adapter = adapter
        self.http_client = http_client
        self.credential = credential
        self.stats = stats
        self.retry = retry
        self.owns_credential = owns_credential
        self.write_pacer = write_pacer or pacing.WritePacer()
        """Directory writes through this client share Graph's write quota
        (`shared.graph.pacing`)."""

    def absolute_url(self, url: str) -> str:
        """``url`` itself when absolute, else ``graph_url`` + ``url``."""
        if urlsplit(url).scheme:
            return url
        return urljoin(self.graph_url + "/", url.lstrip("/"))

    def endpoint(self, url: str) -> str:
        """The endpoint template of ``url`` (no ids, no query), for messages and counters."""
        return middleware.endpoint_template(self.absolute_url(url), self.base_path)

    async def get_json(
        self, url: str, *, headers: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """GET ``url`` (absolute, or relative to ``graph_url``) and parse the JSON body.

        Raises :class:`~shared.graph.errors.DeltaExpired` for HTTP 410 or a
        delta-expiry error code, :class:`~shared.graph.errors.GraphReadError`
        for any other failure once the retry handler has given up.
        """
        absolute = self.absolute_url(url)
        endpoint = self.endpoint(absolute)
        request = RequestInformation(Method.GET)
        request.url = absolute
        request.headers.try_add("Accept", "application/json")
        for name, value in (headers or {}).items():
            request.headers.add(name, value)
        body = await self._send(request, endpoint)
        if not isinstance(body, bytes | bytearray) or not body:
            raise errors.GraphReadError(endpoint, 200, "empty_body", "Graph answered no content")
        return _json_object(endpoint, body)

    async def _send(self, request: RequestInformation, endpoint: str) -> Any:
        """`request` through the SDK's pipeline (retries, throttling); its failures as
        :class:`~shared.graph.errors.GraphReadError`."""
        try:
            return await self.adapter.send_primitive_async(request, "bytes", _ERROR_MAP)
        except APIError as exc:
            raise _read_error(endpoint, exc) from exc
        except httpx.HTTPError as exc:
            raise errors.GraphReadError(
                endpoint, None, "transport_error", f"{type(exc).__name__}: {exc}"
            ) from exc

    async def post_json(self, url: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST a JSON ``body`` to ``url`` and parse the JSON answer (a read such as
        ``$batch``: failures raise :class:`~shared.graph.errors.GraphReadError`)."""
        absolute = self.absolute_url(url)
        endpoint = self.endpoint(absolute)
        request = RequestInformation(Method.POST)
        request.url = absolute
        request.headers.try_add("Accept", "application/json")
        request.headers.try_add("Content-Type", "application/json")
        request.content = json.dumps(body).encode()
        answer = await self._send(request, endpoint)
        return _json_object(endpoint, answer or b"")

    async def send_json(self, method: str, url: str,
                        body: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        """``method`` (POST, PATCH, DELETE) on ``url`` with an optional JSON ``body``; the
        JSON answer, or None when Graph answered no content (204). Failures raise
        :class:`~shared.graph.errors.GraphReadError` with Graph's status and code."""
        absolute = self.absolute_url(url)
        endpoint = self.endpoint(absolute)
        request = RequestInformation(Method[method.upper()])
        request.url = absolute
        request.headers.try_add("Accept", "application/json")
        if body is not None:
            request.headers.try_add("Content-Type", "application/json")
            request.content = json.dumps(body).encode()
        answer = await self._send(request, endpoint)
        return _json_object(endpoint, answer) if answer else None

    async def aclose(self) -> None:
        """Close the HTTP connections, and the credential when this client created it."""
        try:
            await self.http_client.aclose()
        finally:
            if self.owns_credential:
                await self.credential.close()

    async def __aenter__(self) -> GraphClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


def _read_error(endpoint: str, exc: APIError) -> errors.GraphReadError:
    status = exc.response_status_code
    code: str | None = None
    message = exc.message or str(exc)
    if isinstance(exc, ODataError) and exc.error is not None:
        code = exc.error.code
        message = exc.error.message or message
    if status == 410 or code in DELTA_EXPIRED_CODES:
        return errors.DeltaExpired(endpoint, status, code or "syncStateNotFound", message)
    return errors.GraphReadError(endpoint, status, code, message)


def resolve_graph_url(graph_url: str | None, env: Mapping[str, str]) -> str:
    """The Graph base URL: the argument, else ``EMPLY_SYNC_GRAPH_URL``, else Graph v1.0."""
    url = (graph_url or env.get(config.GRAPH_URL) or config.DEFAULT_GRAPH_URL).strip()
    return url.rstrip("/")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default TLS context (certifi's CA bundle), made once per process: loading
    the bundle costs tens of milliseconds of CPU, and every run opens a client."""
    return httpx.create_ssl_context()


class _ReadClient(httpx.AsyncClient):
    """httpx's client, except that a response read in full does not outlive its reader.

    httpx binds a response's stream back to the response (`httpx.BoundAsyncStream`), a
    reference cycle: a response, and the body it holds, stays until the cyclic garbage
    collector runs, which counts objects, not bytes. A full read of 100,000 users held
    most of its hundred 300 KB pages at once that way. A body read in full (not
    streamed) has spent its stream: an empty one in its place breaks the cycle, and the
    page goes as soon as the adapter lets go of the response."""

    async def send(self, request: httpx.Request, *, stream: bool = False,
                   **options: Any) -> httpx.Response:
        response = await super().send(request, stream=stream, **options)
        if not stream and response.is_closed:
            response.stream = httpx.ByteStream(b"")
        return response


def _http_client(transport: httpx.AsyncBaseTransport | None) -> httpx.AsyncClient:
    """Kiota's default client (its timeouts, HTTP/2), on ``transport`` when given."""
    if transport is not None:
        return _ReadClient(timeout=_TIMEOUT, transport=transport)
    # As many idle connections kept as may be open: the mailbox reads keep many batches
    # in flight, and httpx's default (20 kept idle) closed and reopened connections.
    return _ReadClient(timeout=_TIMEOUT, http2=True, limits=_LIMITS, verify=_tls_context())


def _middleware_chain(
    stats: middleware.GraphStats, base_path: str, retry: middleware.RetryPolicy
) -> list[BaseMiddleware]:
    # msgraph's own request-option defaults (``/me`` URL replacement, telemetry).
    options = graph_request_adapter.options
    chain = KiotaClientFactory.get_default_middleware(options)
    chain = [
        middleware.BoundedRetryHandler(retry) if isinstance(m, RetryHandler) else m for m in chain
    ]
    telemetry = options.get(GraphTelemetryHandlerOption.get_key())
    if isinstance(telemetry, GraphTelemetryHandlerOption):
        chain.append(GraphTelemetryHandler(options=telemetry))
    else:
        chain.append(GraphTelemetryHandler())
    # Innermost, after the retry handler: sees every exchange, retried 429s included.
    chain.append(middleware.StatsMiddleware(stats, base_path))
    return chain


def create_graph_client(
    graph_url: str | None = None,
    env: Mapping[str, str] | None = None,
    *,
    credential: AsyncTokenCredential | None = None,
    retry: middleware.RetryPolicy | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    write_quota: pacing.WriteQuota | None = None,
) -> GraphClient:
    """A :class:`GraphClient` for ``graph_url`` (default from ``env``, then Graph v1.0).

    ``transport``: what sends the requests under the SDK's middleware (httpx's seam; the
    default is a socket). Tests of the run pass the simulator's in-process transport.

    ``env`` defaults to ``os.environ``. The credential is chosen by
    :func:`shared.graph.credentials.create_credential` unless given (a given
    credential stays the caller's to close); the retry
    policy is the simulator's short one for loopback URLs, Graph's otherwise. Directory
    writes are paced under ``write_quota``: by default Graph's published quota against
    Graph, none against the loopback simulator (whose own quota is off unless a test
    switches it on).
    """
    environ: Mapping[str, str] = os.environ if env is None else env
    url = resolve_graph_url(graph_url, environ)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"Graph URL must be an absolute http(s) URL, got {url!r}")
    loopback = credentials.is_loopback(url)
    if parts.scheme == "http" and not loopback:
        raise ValueError(f"Graph URL must use https unless it is loopback, got {url!r}")
    owns_credential = credential is None
    if credential is None:
        credential = credentials.create_credential(url, environ)
    if retry is None:
        retry = middleware.SIMULATOR_RETRY_POLICY if loopback else middleware.GRAPH_RETRY_POLICY

    auth = AzureIdentityAuthenticationProvider(
        credential,
        scopes=credentials.graph_scopes(url),
        allowed_hosts=[parts.hostname],
    )
    stats = middleware.GraphStats()
    base_path = parts.path.rstrip("/")
    client = _http_client(transport)
    http_client = GraphClientFactory.create_with_custom_middleware(
        _middleware_chain(stats, base_path, retry), client=client)
    adapter = GraphRequestAdapter(auth, client=http_client)
    # The adapter's base URL, not httpx's (that one yields ``/v1.0//users``).
    adapter.base_url = url
    service = GraphServiceClient(request_adapter=adapter)
    return GraphClient(
        url, service, adapter, http_client, credential, stats, retry, owns_credential,
        pacing.WritePacer(write_quota or (None if loopback else pacing.GRAPH_WRITE_QUOTA)),
    )


def _json_object(endpoint: str, body: bytes | bytearray) -> dict[str, Any]:
    """A Graph answer's JSON object; anything else is a GraphReadError naming it."""
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise errors.GraphReadError(endpoint, 200, "invalid_json", str(exc)) from exc
    if not isinstance(parsed, dict):
        raise errors.GraphReadError(endpoint, 200, "invalid_json", "expected a JSON object")
    return parsed
