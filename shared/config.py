"""Every app setting and environment variable the code reads, in one place.

`infra/` sets these on the function app; a test compares the two lists, so a
name used here and not set there (or the other way round) fails the build.
"""

from __future__ import annotations

# Storage. Locally: a connection string (Azurite). In Azure: identity-based
# endpoints plus the user-assigned managed identity's client id.
STORAGE_CONNECTION_STRING = "EMPLY_SYNC_STORAGE"
STORAGE_TABLE_ENDPOINT = "EMPLY_SYNC_TABLE_ENDPOINT"
STORAGE_BLOB_ENDPOINT = "EMPLY_SYNC_BLOB_ENDPOINT"

# Microsoft Graph.
GRAPH_URL = "EMPLY_SYNC_GRAPH_URL"
# The Entra app registration the sync acts as, and its tenant. In Azure the
# credential is a client assertion: the managed identity's token for
# api://AzureADTokenExchange (federated credential, no secret).
GRAPH_CLIENT_ID = "EMPLY_SYNC_GRAPH_CLIENT_ID"
GRAPH_TENANT_ID = "EMPLY_SYNC_GRAPH_TENANT_ID"

# The user-assigned managed identity (azure-identity's own variable name).
MANAGED_IDENTITY_CLIENT_ID = "AZURE_CLIENT_ID"

# Telemetry: OpenTelemetry export to Application Insights when set.
APPINSIGHTS_CONNECTION_STRING = "APPLICATIONINSIGHTS_CONNECTION_STRING"

# The timer's NCRONTAB schedule. Read by the Functions host, not by Python: the
# timer binding says %EMPLY_SYNC_SCHEDULE%, so the setting must exist wherever the
# app runs (infra/ and local.settings.example.json set it), or the timer does not load.
SYNC_SCHEDULE = "EMPLY_SYNC_SCHEDULE"
DEFAULT_SYNC_SCHEDULE = "0 */30 * * * *"
"""The FAQ's "every 30 minutes" (R1): the default infra/ and the local example set."""

# The queue of manual run requests (POST /api/sync → the queue-triggered worker).
# RUN_QUEUE_CONNECTION is the binding's connection name: locally a connection string;
# in Azure its `__queueServiceUri`, `__credential` and `__clientId` (identity-based).
RUN_QUEUE_NAME = "emply-sync-runs"
RUN_QUEUE_CONNECTION = "EMPLY_SYNC_QUEUE"
RUN_QUEUE_SERVICE_URI = f"{RUN_QUEUE_CONNECTION}__queueServiceUri"
RUN_QUEUE_CREDENTIAL = f"{RUN_QUEUE_CONNECTION}__credential"
RUN_QUEUE_CLIENT_ID = f"{RUN_QUEUE_CONNECTION}__clientId"

# With Entra ID authentication on (App Service authentication, infra's emplyClientAppId):
# the app role a caller's token must carry; empty or unset, function keys only.
REQUIRED_ROLE = "EMPLY_SYNC_REQUIRED_ROLE"

# Graph change notifications (shared.notify.inbox, shared.notify.renewal): on/off
# ("true"/"false", unset = off: the timer alone, as before), the app's public base URL
# Graph calls back (https://<app>.azurewebsites.net), the function key Graph puts in
# that URL (infra: a named host function key, never in source), and the debounce:
# at most one notification-triggered run per this many seconds.
NOTIFICATIONS = "EMPLY_SYNC_NOTIFICATIONS"
PUBLIC_URL = "EMPLY_SYNC_PUBLIC_URL"
NOTIFICATION_KEY = "EMPLY_SYNC_NOTIFICATION_KEY"
NOTIFICATION_DEBOUNCE = "EMPLY_SYNC_NOTIFICATION_DEBOUNCE_SECONDS"
DEFAULT_NOTIFICATION_DEBOUNCE_SECONDS = 60
# Graph's delta can lag its notification: a notification whose delta shows nothing new is
# looked at again this many seconds later (doubled each time), at most this many times.
NOTIFICATION_RECHECK = "EMPLY_SYNC_NOTIFICATION_RECHECK_SECONDS"
DEFAULT_NOTIFICATION_RECHECK_SECONDS = 15
NOTIFICATION_RECHECKS = "EMPLY_SYNC_NOTIFICATION_RECHECKS"
DEFAULT_NOTIFICATION_RECHECKS = 3
NOTIFY_QUEUE_NAME = "emply-sync-notify"
"""The queue of notification work (targeted runs, lifecycle actions); same connection."""

# The mailbox pass (R13's calendars, R14's events; shared.run.mailboxes): `$batch`
# requests in flight at most (Outlook's 4 requests per mailbox hold whatever this is),
# and about how many synced mailboxes a shard holds.
MAILBOX_BATCHES = "EMPLY_SYNC_MAILBOX_BATCHES"
MAILBOX_SHARD_SIZE = "EMPLY_SYNC_MAILBOX_SHARD_SIZE"
# Where the pass's shards run: "inline" (in the run's own process, the default) or
# "queue" (one message per shard on MAILBOX_QUEUE_NAME, worked by the queue trigger on as
# many instances as the host scales to; same connection as the run-request queue).
MAILBOX_SHARDS = "EMPLY_SYNC_MAILBOX_SHARDS"
MAILBOX_QUEUE_NAME = "emply-sync-mailboxes"
# With notifications on: every mailbox is still read at least once in this many hours
# (the sweep; 0: every run reads every mailbox).
MAILBOX_SWEEP_HOURS = "EMPLY_SYNC_MAILBOX_SWEEP_HOURS"

DEFAULT_GRAPH_URL = "https://graph.microsoft.com/v1.0"
# Azurite's well-known development account (public, documented by Microsoft).
AZURITE_DEV_CONNECTION_STRING = "UseDevelopmentStorage=true"

APP_SETTINGS: tuple[str, ...] = (
    STORAGE_TABLE_ENDPOINT,
    STORAGE_BLOB_ENDPOINT,
    GRAPH_URL,
    GRAPH_CLIENT_ID,
    GRAPH_TENANT_ID,
    MANAGED_IDENTITY_CLIENT_ID,
    APPINSIGHTS_CONNECTION_STRING,
    SYNC_SCHEDULE,
    RUN_QUEUE_SERVICE_URI,
    RUN_QUEUE_CREDENTIAL,
    RUN_QUEUE_CLIENT_ID,
    REQUIRED_ROLE,
    NOTIFICATIONS,
    PUBLIC_URL,
    NOTIFICATION_KEY,
    NOTIFICATION_DEBOUNCE,
    MAILBOX_BATCHES,
    MAILBOX_SHARD_SIZE,
    MAILBOX_SHARDS,
    MAILBOX_SWEEP_HOURS,
    NOTIFICATION_RECHECK,
    NOTIFICATION_RECHECKS,
)
"""The settings `infra/` must set on the function app (the connection string
is local-only: in Azure storage is reached by identity)."""

# The Graph simulator's bearer token. Not a secret: the simulator only listens
# on loopback and the Graph adapter sends it only to loopback URLs.
SIMULATOR_TOKEN = "emply-sync-simulator-token"
