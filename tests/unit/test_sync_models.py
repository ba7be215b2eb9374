"""The sync routes' models: the TypedDicts, the JSON Schemas and the validator agree."""

from __future__ import annotations

import re

import pytest

from shared.app import manual_runs
from webhook_http import operators, sync_models
from webhook_http.answers import BadRequest
from webhook_http.sync_routes import SYNC_FIELDS, area, parse_sync_body


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
    (route,) = [r for r in area.routes if r.operation_id == "startSync"]
    assert route.parameters[0]["schema"]["maximum"] == manual_runs.MAX_WAIT_SECONDS


def test_the_sync_and_operator_areas_declare_every_schema_and_route() -> None:
    routes = {(r.path, r.method): r for a in (area, operators.area) for r in a.routes}
    assert set(routes) == {("/sync", "post"), ("/sync/runs", "get"),
                           ("/sync/runs/{runId}", "get"), ("/health", "get"),
                           ("/health/details", "get"), ("/users/{user}/explain", "get")}
    schemas = {**area.schemas, **operators.area.schemas}
    assert set(schemas) == set(sync_models.SCHEMAS)
    refs = re.findall(r"#/components/schemas/(\w+)", repr(routes))
    assert set(refs) <= set(schemas)
