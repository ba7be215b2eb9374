"""Entra adapter: reads (and later writes) Microsoft Graph over msgraph-sdk.

Modules: :mod:`.client` (the SDK pipeline and raw-JSON reads),
:mod:`.credentials` (which credential for which URL), :mod:`.middleware`
(bounded retries, counters), :mod:`.reader` (the Entra mirror, delta rounds),
:mod:`.errors` (the exception hierarchy, drawn in its docstring), :mod:`.failures`
(what one user's mailbox or photo read failed with: carried in the read's result,
never raised), :mod:`.pacing` (writes under Graph's write quota), and the per-user
reads and writes: :mod:`.mailboxes`, :mod:`.events`, :mod:`.photos`, :mod:`.writer`,
:mod:`.creator`, :mod:`.event_writer`, :mod:`.subscriptions`.
"""
