"""HTTP area "employees": Emply's HR profiles, one at a time (ETags, If-Match, paging,
filters). See docs/emply-api.md."""

from __future__ import annotations

import azure.functions as func

from webhook_http import entity_routes as er
from webhook_http.routes import Area

area = Area("employees")
bp = area.bp


@area.route(er.list_route(area, "employees"))
async def list_employees(req: func.HttpRequest) -> func.HttpResponse:
    return await er.list_page(req, "employees")


@area.route(er.get_route("/employees/{id}", "employees", "One employee"))
async def get_employee(req: func.HttpRequest) -> func.HttpResponse:
    return await er.get_one(req, "employees")


@area.route(er.put_route("/employees/{id}", "employees", "Create or replace one employee"))
async def put_employee(req: func.HttpRequest) -> func.HttpResponse:
    return await er.put_one(req, "employees")


@area.route(er.patch_route("/employees/{id}", "employees"))
async def patch_employee(req: func.HttpRequest) -> func.HttpResponse:
    return await er.patch_one(req, "employees")
