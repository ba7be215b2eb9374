"""The Azure Functions app: registers the blueprints, nothing else."""

import azure.functions as func

from sync_queue import bp as queue_bp
from sync_timer import bp as timer_bp
from webhook_http import (
    changes,
    employees,
    emply_document,
    notifications,
    openapi_route,
    operators,
    outbound_events,
    roles,
    settings,
    sync_routes,
    user_sync,
    users,
)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(timer_bp)
app.register_functions(queue_bp)
app.register_functions(sync_routes.bp)
app.register_functions(operators.bp)
app.register_functions(emply_document.bp)
app.register_functions(settings.bp)
app.register_functions(roles.bp)
app.register_functions(users.bp)
app.register_functions(user_sync.bp)
app.register_functions(employees.bp)
app.register_functions(outbound_events.bp)
app.register_functions(changes.bp)
app.register_functions(notifications.bp)
app.register_functions(openapi_route.bp)
