"""The hand-built Table wire (`shared.store.wire`) against the azure-data-tables it leans on.

`wire` writes `$batch` bodies and reads query JSON itself for speed, sending them
through the table client's own pipeline. That leans on one private attribute of
azure-data-tables (`TableClient._client`, the generated client) and, before the
public `TableClient.url` took its place, on a second (`_primary_hostname`). These
tests fail when the pinned version moves or the wire starts using anything else
private, and pin the batch body byte for byte.
"""

from __future__ import annotations

import ast
import importlib.metadata
import inspect
import re
from pathlib import Path
from typing import Any

from azure.core.credentials import AzureNamedKeyCredential
from azure.data.tables.aio import TableClient

from shared.store import EmplyStore, codec, wire
from shared.store.keys import azurite_connection_string

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "batch_body.txt"
PRIVATE_ATTRIBUTES = {"_client"}
"""Every private attribute of azure-data-tables that shared/store/wire.py touches."""
BATCH = "batch_00000000-0000-0000-0000-000000000001"
CHANGESET = "changeset_00000000-0000-0000-0000-000000000002"
GOLDEN_OPS: list[wire.Operation] = [
    ("upsert", {"PartitionKey": "user-0a", "RowKey": "u-megan", "id": "u-megan",
                "displayName": "Megan Jordan", "roles": "[\"employee\",\"hr\"]"}, {}),
    ("update", {"PartitionKey": "user-0a", "RowKey": "o'brien/x", "id": "o'brien/x",
                "displayName": "Dara Ó Briain"}, {"etag": "W/\"datetime'2026-12-01T09%3A00'\""}),
    ("delete", {"PartitionKey": "user-0a", "RowKey": "u-gone"}, {"etag": "W/\"x\""}),
    ("delete", {"PartitionKey": "user-0a", "RowKey": "u-any"}, {}),
]


def golden_table() -> TableClient:
    return TableClient(endpoint="https://contoso.table.core.windows.net", table_name="emply",
                       credential=AzureNamedKeyCredential("contoso", "a2V5"))


def pinned(package: str) -> str:
    text = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    match = re.search(rf"^{re.escape(package)}==(\S+)$", text, re.MULTILINE)
    assert match, f"{package} is not pinned in requirements.txt"
    return match.group(1)


def test_the_installed_azure_data_tables_is_the_pinned_one() -> None:
    # Moving the pin means re-checking the attributes below and the golden body.
    assert importlib.metadata.version("azure-data-tables") == pinned("azure-data-tables") \
        == "12.7.0"


def test_the_wire_uses_only_the_named_private_attributes() -> None:
    tree = ast.parse(inspect.getsource(wire))
    private = {node.attr for node in ast.walk(tree)
               if isinstance(node, ast.Attribute) and node.attr.startswith("_")
               and not node.attr.startswith("__")}
    assert private == PRIVATE_ATTRIBUTES


async def test_the_private_client_sends_requests_through_the_pipeline() -> None:
    async with golden_table() as table:
        client: Any = table._client
        signature = inspect.signature(client.send_request)
        # send_request(request, **kwargs) -> Awaitable[AsyncHttpResponse]; `stream=True`
        # goes through **kwargs to the pipeline run.
        assert list(signature.parameters) == ["request", "kwargs"]
        assert "Awaitable" in str(signature.return_annotation)
        assert "AsyncHttpResponse" in str(signature.return_annotation)


async def test_public_url_gives_what_the_private_hostname_gave() -> None:
    """Azure's host-style and Azurite's path-style endpoints alike."""
    azurite = TableClient.from_connection_string(
        azurite_connection_string(table_port=10002, blob_port=10000), "emply")
    for table in (golden_table(), azurite):
        async with table:
            private: Any = table._primary_hostname
            assert wire.endpoint(table) == f"{table.scheme}://{private}"
    assert wire.endpoint(azurite).endswith("/devstoreaccount1")


async def test_the_batch_body_is_the_golden_one() -> None:
    async with golden_table() as table:
        body = wire.build_body(table, GOLDEN_OPS, BATCH, CHANGESET)
    assert body.encode() == GOLDEN.read_bytes()
    # What the golden file holds, in words: one changeset, a part per operation, keys
    # quoted ('' for a quote, then percent-encoded), If-Match only on conditional writes.
    assert body.count("Content-ID: ") == len(GOLDEN_OPS)
    assert "RowKey='o%27%27brien%2Fx'" in body
    assert body.count("If-Match: ") == 3 and "If-Match: *" in body
    assert "https://contoso.table.core.windows.net/emply(PartitionKey='user-0a'" in body


async def test_etags_are_under_one_key_however_a_row_was_read(store: EmplyStore) -> None:
    ops: list[wire.Operation] = [
        ("upsert", {"PartitionKey": "p", "RowKey": f"r{i}", "n": i}, {}) for i in range(3)]
    etags = await wire.submit(store.emply, ops)
    by_wire = await wire.get(store.emply, "p", "r1")
    by_sdk = await codec.get_row(store.emply, "p", "r1")
    pages = [row async for page in wire.query(store.emply, "PartitionKey eq 'p'")
             for row in page]
    assert by_wire is not None and by_sdk is not None
    assert by_wire[wire.ETAG] == by_sdk[wire.ETAG] == etags[1]
    assert [row[wire.ETAG] for row in pages] == etags
    assert not [key for key in by_sdk if "etag" in key.lower() and key != wire.ETAG]
