"""The HTTP triggers: one Azure Functions Blueprint per area, each registered by
`function_app.py` (module, area, routes under /api)::

    sync_routes       the manual sync, run history    sync, sync/runs, sync/runs/{runId}
    operators         explain (R18), health           users/{user}/explain, health[/details]
    emply_document    the whole Emply document        emply
    settings, roles   settings, the list of roles     settings, roles
    users             users one at a time, calendars  users[/{id}[/calendars/{cid}]]
    user_sync         one user now (R1, R18)          users/{key}/sync
    employees         employees one at a time         employees[/{id}]
    outbound_events   R15's outbound events           outbound-events/{id} (GET, PUT, DELETE)
    changes           the change feed                 changes
    notifications     Graph change notifications      graph/notifications
    openapi_route     the OpenAPI document of all     openapi.json

Shared by the areas: `routes` (the declaration beside each handler, the Blueprint, the
caller check), `answers` (JSON and problem bodies), `requests` (reading a request of
the Emply API), `entity_routes` (the one-entity routes), `openapi` (the document built
from the declarations), `caller` (the app role), `sync_models` (the sync bodies).
Importing this package registers nothing.
"""
