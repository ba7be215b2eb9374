"""Entra adapter: reads (and later writes) Microsoft Graph over msgraph-sdk.

Modules: :mod:`.client` (the SDK pipeline and raw-JSON reads),
:mod:`.credentials` (which credential for which URL), :mod:`.middleware`
(bounded retries, counters), :mod:`.reader` (the Entra mirror, delta rounds),
:mod:`.errors` (the exception hierarchy, drawn in its docstring).
"""
