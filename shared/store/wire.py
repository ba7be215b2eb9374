"""Bulk Table requests, serialised by hand.

azure-data-tables is slow in bulk: a transaction is built through the `email`
package (about 1.5 ms of CPU per entity) and a query result goes through the
generic model deserialiser (about 0.2 ms per entity), so 100,000 users cost
minutes of CPU. Here the store writes the documented `$batch` body and reads
the documented query JSON itself (same headers the SDK sends), and sends both
through the table client's own pipeline, which keeps authentication (shared
key locally, Entra tokens in Azure), retries and logging.

`submit`: one atomic transaction of at most 100 operations on one partition.
`query`: all rows matching a filter, as plain dicts (`odata.etag` included).
`get`: one row by its keys, the same way (a point read: on Azurite any query scans
the whole table, a point read does not).

What this leans on in azure-data-tables (pinned in requirements.txt; checked by
tests/store/test_wire_contract.py, which fails on another version so the pin is
moved knowingly): the public `TableClient.url` (account endpoint), `.table_name`,
`.api_version`; and one private attribute, `TableClient._client`, the
generated client whose `send_request` sends a request through the client's own
pipeline. The body follows the documented Table service `$batch` format; a
golden test pins it byte for byte.

Every row this store handles carries its ETag under one key, `ETAG` (the
service's own `odata.etag`), whether it came through here or through the SDK.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from azure.core.exceptions import HttpResponseError, ServiceRequestError
from azure.core.rest import HttpRequest
from azure.data.tables.aio import TableClient

ETAG = "odata.etag"
"""The key of a row's ETag, in rows read here and in entities read with the SDK."""

Operation = tuple[str, dict[str, Any], dict[str, Any]]
"""("upsert" | "update" | "insert" | "delete", entity with PartitionKey/RowKey,
{"etag": ...}); "insert" fails the transaction (409) when the entity exists."""

_STATUS = re.compile(r"^HTTP/1\.1 (\d{3})", re.MULTILINE)
_ETAG = re.compile(r"^ETag: *(.+?)\r?$", re.MULTILINE | re.IGNORECASE)
_ERROR = re.compile(r'"code" *: *"([^"]+)"')
_SEND_ATTEMPTS = 10  # more than the connections the store keeps in flight (8)


class BatchError(HttpResponseError):
    """A transaction the service refused; `status_code` is the failing part's."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        super().__init__(message=message)
        self.status_code = status
        self.code = code


def _key(value: str) -> str:
    return quote(value.replace("'", "''"), safe="")


def endpoint(table: TableClient) -> str:
    """The account's table endpoint (`https://account.table.core.windows.net`, or
    Azurite's `http://127.0.0.1:port/devstoreaccount1`), from the public `url`; a SAS
    in it, if the client was made with one in the URL, is not part of the path."""
    return table.url.split("?", 1)[0].rstrip("/")


def build_body(table: TableClient, ops: Sequence[Operation],
               batch: str, changeset: str) -> str:
    base = f"{endpoint(table)}/{table.table_name}"
    version = table.api_version
    out = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"]
    for index, (verb, entity, options) in enumerate(ops):
        url = (f"{base}(PartitionKey='{_key(entity['PartitionKey'])}',"
               f"RowKey='{_key(entity['RowKey'])}')")
        out.append(f"--{changeset}\r\nContent-Type: application/http\r\n"
                   f"Content-Transfer-Encoding: binary\r\nContent-ID: {index}\r\n\r\n")
        if verb == "delete":
            etag = options.get("etag") or "*"
            out.append(f"DELETE {url} HTTP/1.1\r\nx-ms-version: {version}\r\n"
                       f"DataServiceVersion: 3.0\r\n"
                       f"Accept: application/json;odata=minimalmetadata\r\n"
                       f"If-Match: {etag}\r\n\r\n")
            continue
        body = json.dumps(entity, ensure_ascii=False, separators=(",", ":"))
        if verb == "insert":  # Insert Entity: a POST to the table, 409 when it exists
            out.append(f"POST {base} HTTP/1.1\r\nContent-Type: application/json\r\n"
                       f"Content-Length: {len(body.encode())}\r\n"
                       f"x-ms-version: {version}\r\nDataServiceVersion: 3.0\r\n"
                       f"Accept: application/json;odata=nometadata\r\n"
                       f"Prefer: return-no-content\r\n\r\n{body}\r\n")
            continue
        if_match = f"If-Match: {options['etag']}\r\n" if verb == "update" else ""
        out.append(f"PUT {url} HTTP/1.1\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body.encode())}\r\n"
                   f"x-ms-version: {version}\r\nDataServiceVersion: 3.0\r\n"
                   f"Accept: application/json\r\n{if_match}\r\n{body}\r\n")
    out.append(f"--{changeset}--\r\n\r\n--{batch}--\r\n")
    return "".join(out)


async def submit(table: TableClient, ops: Sequence[Operation]) -> list[str | None]:
    """Run `ops` as one transaction; the new ETag of each operation (None for deletes).

    Raises `BatchError` (404 missing, 409 exists, 412 ETag mismatch, ...) when
    the service refuses it: then nothing of the transaction was applied.
    """
    if not 0 < len(ops) <= 100:
        raise ValueError("a transaction holds 1 to 100 operations")
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    content = build_body(table, ops, batch, changeset).encode()
    request = HttpRequest(
        "POST", f"{endpoint(table)}/$batch",
        headers={"x-ms-version": table.api_version, "DataServiceVersion": "3.0",
                 "MaxDataServiceVersion": "3.0;NetFx",
                 "Content-Type": f"multipart/mixed; boundary={batch}",
                 "Accept": "application/json"},
        content=content)
    # stream=True: the pipeline's ContentDecodePolicy cannot parse multipart.
    for attempt in range(_SEND_ATTEMPTS):
        try:
            response = await table._client.send_request(request, stream=True)
            break
        except ServiceRequestError:
            # The request was not delivered (typically a pooled keep-alive connection the
            # server closed while we were busy planning: Azurite closes them after 5 s
            # idle). The pipeline retries no POST, so a transaction is sent again here.
            if attempt + 1 == _SEND_ATTEMPTS:
                raise
    await response.read()
    text = response.text()
    if response.status_code != 202:
        code = _ERROR.search(text)
        raise BatchError(response.status_code, code.group(1) if code else None,
                         f"transaction refused ({response.status_code}): {text[:500]}")
    statuses = [int(m.group(1)) for m in _STATUS.finditer(text)]
    failed = [s for s in statuses if not 200 <= s < 300]
    if failed or len(statuses) != len(ops):
        code = _ERROR.search(text)
        status = failed[0] if failed else 500
        raise BatchError(status, code.group(1) if code else None,
                         f"transaction failed ({status}): {text[:500]}")
    etags: list[str | None] = []
    for part in re.split(r"^--changesetresponse_[^\r\n]*\r?$", text, flags=re.MULTILINE):
        if _STATUS.search(part):
            match = _ETAG.search(part)
            etags.append(match.group(1) if match else None)
    return etags


async def get(table: TableClient, partition_key: str, row_key: str) -> dict[str, Any] | None:
    """One entity as a plain JSON object (`odata.etag` included), or None when missing."""
    url = (f"{endpoint(table)}/{table.table_name}"
           f"(PartitionKey='{_key(partition_key)}',RowKey='{_key(row_key)}')")
    request = HttpRequest("GET", url, headers={
        "x-ms-version": table.api_version, "DataServiceVersion": "3.0",
        "Accept": "application/json;odata=minimalmetadata"})
    response = await table._client.send_request(request, stream=True)
    await response.read()
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise HttpResponseError(message=response.text()[:500], response=response)
    row: dict[str, Any] = json.loads(response.content)
    row.setdefault(ETAG, response.headers.get("ETag"))
    return row


async def query(table: TableClient, query_filter: str, *, select: Sequence[str] | None = None,
                page_size: int = 1000) -> AsyncIterator[list[dict[str, Any]]]:
    """Pages of rows (plain JSON objects) matching an OData filter."""
    base = f"{endpoint(table)}/{table.table_name}()"
    params: dict[str, str] = {"$top": str(page_size), "$filter": query_filter}
    if select:
        params["$select"] = ",".join(select)
    while True:
        request = HttpRequest(
            "GET", f"{base}?{urlencode(params, quote_via=quote, safe='$')}",
            headers={"x-ms-version": table.api_version, "DataServiceVersion": "3.0",
                     "Accept": "application/json;odata=minimalmetadata"})
        response = await table._client.send_request(request, stream=True)
        await response.read()
        if response.status_code != 200:
            raise HttpResponseError(message=response.text()[:500], response=response)
        rows: list[dict[str, Any]] = json.loads(response.content)["value"]
        yield rows
        next_pk = response.headers.get("x-ms-continuation-NextPartitionKey")
        if not next_pk:
            return
        params["NextPartitionKey"] = next_pk
        next_rk = response.headers.get("x-ms-continuation-NextRowKey")
        if next_rk:
            params["NextRowKey"] = next_rk
        else:
            params.pop("NextRowKey", None)
