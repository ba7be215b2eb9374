"""The Azure Functions app: registers the blueprints, nothing else."""

import azure.functions as func

from sync_queue import bp as queue_bp
from sync_timer import bp as timer_bp
from webhook_http import bp as http_bp

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(timer_bp)
app.register_functions(http_bp)
app.register_functions(queue_bp)
