"""The OpenAPI document: every route in it, and schemathesis against it on the function
handlers (through azure.functions HttpRequest/HttpResponse, as the host calls them;
Core Tools cannot run here), with Azurite and the Graph simulator behind them.

A small WSGI adapter turns schemathesis's requests into `func.HttpRequest`s, finds the
function by the routes the app registered, runs it and answers with its response.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

import azure.functions as func
import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    positive_data_acceptance,
    unsupported_method,
)
from werkzeug.wrappers import Request, Response

import function_app
from tests.e2e import tenants as t
from tests.e2e.test_http import FUNCTIONS, function, world_with_staff
from tests.support import hostile
from webhook_http import openapi_route


def _routes() -> list[tuple[re.Pattern[str], str, str]]:
    out = []
    for name, fn in FUNCTIONS.items():
        binding = json.loads(fn.get_function_json())["bindings"][0]
        if binding["type"] != "httpTrigger":
            continue
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", binding["route"])
        for method in binding["methods"]:
            out.append((re.compile(f"^/api/{pattern}$"), method, name))
    return out


ROUTES = _routes()


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Call the function whose route and method match, as the Functions host would."""
    request = Request(environ)
    # The host refuses a request without a function key before any handler runs (which
    # key is right is the host's business: any key passes here).
    if not (request.headers.get("x-functions-key") or request.args.get("code")):
        return Response(b"", status=401)(environ, start_response)
    for pattern, method, name in ROUTES:
        match = pattern.match(request.path)
        if match and method == request.method:
            req = func.HttpRequest(
                method=request.method, url=request.url, body=request.get_data(),
                headers=dict(request.headers), params=dict(request.args),
                route_params=match.groupdict())
            answer: func.HttpResponse = asyncio.run(function(name)(req))
            response = Response(answer.get_body(), status=answer.status_code,
                                headers=dict(answer.headers), mimetype=answer.mimetype)
            return response(environ, start_response)
    return Response(b"", status=404)(environ, start_response)


def test_every_registered_route_is_in_the_document() -> None:
    paths = openapi_route.document()["paths"]
    declared = {(f"/api{path}", method.upper()) for path, ops in paths.items() for method in ops}
    registered = {(re.sub(r"\(\?P<(\w+)>\[\^/\]\+\)", r"{\1}", p.pattern[1:-1]), m)
                  for p, m, _name in ROUTES}
    assert declared == registered


def test_the_document_covers_every_area_function_app_registers() -> None:
    """The OpenAPI area's list of areas is the list of blueprints the app registers."""
    registered = {id(value.bp) for value in vars(function_app).values()
                  if hasattr(value, "area") and hasattr(value, "bp")}
    assert registered == {id(area.bp) for area in openapi_route.AREAS}
    assert len(openapi_route.AREAS) == 12


def test_the_document_is_served_and_refers_to_the_schema_table() -> None:
    response = asyncio.run(function("openapi_document")(func.HttpRequest(
        method="GET", url="/api/openapi.json", body=b"")))
    doc = json.loads(response.get_body())
    assert doc["openapi"] == "3.1.0"
    user = doc["components"]["schemas"]["User"]
    assert user["properties"]["status"]["enum"] == ["active", "deactivated", "deleted"]
    assert user["additionalProperties"] is False and "username" in user["required"]
    guard = doc["components"]["schemas"]["Settings"]["properties"]["deactivationGuard"]
    assert guard["properties"]["maxPercent"] == {"type": "number", "minimum": 0,
                                                 "maximum": 100}


# The coverage phase (every boundary value of every field: thousands of cases, each a
# handler call against Azurite) is left out to keep the suite's time; the examples and
# fuzzing phases, positive and negative data, run.
SCHEMA = schemathesis.openapi.from_dict(
    openapi_route.document(),
    config=SchemathesisConfig.from_dict({"phases": {"coverage": {"enabled": False}}}))
SCHEMA.app = wsgi_app


@pytest.fixture
def world(make_world: Any) -> Any:
    world = world_with_staff(make_world)
    world.import_state(t.emply_state([
        {"id": "u-1", "username": "someone@contoso.com", "email": "someone@contoso.com",
         "roles": ["employee"]}], [{"id": "e-1", "email": "ray.ross@contoso.com"}]))
    return world


def _state() -> tuple[bytes, Any]:
    """The Emply side (as GET /api/emply exports it) and the run history."""
    doc = asyncio.run(function("export_emply")(func.HttpRequest(
        method="GET", url="/api/emply", body=b""))).get_body()
    runs = asyncio.run(function("list_runs")(func.HttpRequest(
        method="GET", url="/api/sync/runs", body=b""))).get_body()
    return doc, json.loads(runs)["runs"]


@pytest.mark.slow
@SCHEMA.parametrize()
@hypothesis.settings(max_examples=10, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_schemathesis(case: Any, world: Any) -> None:
    # GETs read only; the state is compared around every request that may write.
    before = _state() if case.method != "GET" else None
    response = case.call(headers={"x-functions-key": "test-key"})
    assert response.status_code < 500, response.text
    # Every check but two. "Schema-valid data is accepted": JSON Schema cannot say what
    # the checks beyond it refuse (unique usernames, references to stored roles, a cursor
    # this service handed out), and those refusals are 400s naming the field. "Bad
    # credentials are refused" and "an undeclared method is a 405": the Functions host
    # checks the function key and routes methods before a handler runs; called directly,
    # the handlers never see either.
    case.validate_response(response, excluded_checks=[positive_data_acceptance,
                                                      ignored_auth, unsupported_method])
    if response.status_code >= 400 and before is not None:
        assert _state() == before, f"{case.method} {case.path} refused but changed state"


# --- hostile input over the same document (issue 24) -------------------------------------

FUNCTION_OF = {(method, re.sub(r"\(\?P<(\w+)>\[\^/\]\+\)", r"{\1}", p.pattern[5:-1])): name
               for p, method, name in ROUTES}
OPERATIONS = [op.ok() for op in SCHEMA.get_all_operations()]


@st.composite
def hostile_requests(draw: st.DrawFn) -> tuple[str, str, func.HttpRequest]:
    """A request schemathesis made for some route, with one part of it made hostile:
    the body (hostile.hostile_body), a query value or cursor, or a route value."""
    operation = draw(st.sampled_from(OPERATIONS))
    case = draw(operation.as_strategy())
    route = operation.path.removeprefix("/")
    parts = ["query"] + (["path"] if case.path_parameters else []) + (
        ["body"] if case.body is not None and not hostile._is_unset(case.body) else [])
    part = draw(st.sampled_from(parts))
    request: func.HttpRequest
    if part == "body":
        request = hostile.request_of(case, route, body=draw(hostile.hostile_body(case.body)))
    elif part == "path":
        name = draw(st.sampled_from(sorted(case.path_parameters)))
        value = draw(st.sampled_from(hostile.HOSTILE_TEXT))
        request = hostile.request_of(case, route,
                                     path_parameters={**case.path_parameters, name: value})
    else:
        names = [p["name"] for p in operation.definition.raw.get("parameters", [])
                 if p.get("in") == "query"] or ["next"]
        name = draw(st.sampled_from(names))
        value = draw(st.sampled_from([*hostile.HOSTILE_TEXT, *hostile.FORGED_CURSORS]))
        request = hostile.request_of(case, route, params={**(case.query or {}), name: value})
    return operation.method.upper(), FUNCTION_OF[(operation.method.upper(),
                                                  operation.path)], request


@hypothesis.given(hostile_requests())
@hypothesis.settings(max_examples=80, deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_hostile_input_is_refused_never_a_500_and_changes_nothing(
        world: Any, generated: tuple[str, str, func.HttpRequest]) -> None:
    method, name, request = generated
    before = _state() if method != "GET" else None
    response: func.HttpResponse = asyncio.run(function(name)(request))
    assert response.status_code < 500, (name, response.get_body()[:300])
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json"
        assert json.loads(response.get_body()).get("field") is not None or \
            response.status_code in (404, 409, 412), response.get_body()[:300]
        if before is not None:
            assert _state() == before, f"{name} refused but changed state"
    if response.mimetype and response.mimetype.endswith("json"):
        json.loads(response.get_body() or b"null",
                   parse_constant=lambda c: pytest.fail(f"{name} answered {c}"))
