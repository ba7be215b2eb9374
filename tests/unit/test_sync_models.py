"""The sync routes' models: the TypedDicts, the JSON Schemas and the validator agree."""

from __future__ import annotations

import re
from typing import Any

import pytest

from shared.app import manual_runs
from webhook_http import SYNC_FIELDS, BadRequest, parse_sync_body, sync_models


def test_the_request_schema_names_exactly_the_fields_the_validator_takes() -> None:
    schema = sync_models.SCHEMAS["SyncRequest"]
    assert set(schema["properties"]) == set(SYNC_FIELDS) == set(
        sync_models.SyncRequest.__annotations__)
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("model", ["SyncQueued", "Health"])
def test_closed_bodies_list_exactly_the_typed_fields(model: str) -> None:
    typed = getattr(sync_models, model).__annotations__
    schema = sync_models.SCHEMAS[model]
    assert set(schema["properties"]) == set(typed) == set(schema["required"])


def test_run_record_requires_what_every_record_has() -> None:
    record = sync_models.RunRecord.__annotations__
    schema = sync_models.SCHEMAS["RunRecord"]
    assert set(schema["required"]) == set(record) - {"queuedAt", "progress"}
    assert set(record) <= set(schema["properties"])


@pytest.mark.parametrize("text", ["3", "12:0123456789ab", "0123456789ab", " 7 ", "x",
                                  "12:nothex", "1.5", "-1", "0123456789abc"])
def test_the_approval_pattern_accepts_what_the_validator_accepts(text: str) -> None:
    pattern = sync_models.SCHEMAS["SyncRequest"]["properties"]["approveDeactivations"][
        "anyOf"][1]["pattern"]
    try:
        parse_sync_body(f'{{"approveDeactivations": "{text}"}}'.encode())
        accepted = True
    except BadRequest:
        accepted = False
    assert bool(re.fullmatch(pattern, text)) is accepted


def test_wait_bound_is_the_handlers() -> None:
    (op,) = [o for o in sync_models.OPERATIONS if o["operation_id"] == "startSync"]
    assert op["parameters"][0]["schema"]["maximum"] == manual_runs.MAX_WAIT_SECONDS


def test_declare_registers_every_schema_and_route() -> None:
    schemas: dict[str, Any] = {}
    routes: dict[tuple[str, str], dict[str, Any]] = {}

    def schema(name: str, value: dict[str, Any]) -> str:
        schemas[name] = value
        return f"#/components/schemas/{name}"

    def operation(path: str, method: str, **spec: Any) -> None:
        routes[(path, method)] = spec

    sync_models.declare(operation, schema)
    assert set(schemas) == set(sync_models.SCHEMAS)
    assert set(routes) == {("/sync", "post"), ("/sync/runs", "get"),
                           ("/sync/runs/{runId}", "get"), ("/health", "get"),
                           ("/health/details", "get")}
    refs = re.findall(r"#/components/schemas/(\w+)", repr(routes))
    assert set(refs) <= set(schemas)
