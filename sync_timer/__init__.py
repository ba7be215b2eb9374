"""Timer trigger: a sync on the app setting's schedule, every 30 minutes by default (R1)."""

from __future__ import annotations

import logging

import azure.functions as func

from shared import config, errors, telemetry
from shared.app import boundary
from shared.notify import renewal

# The host reads the schedule from the app setting (%NAME%), so operators change
# it without a code change; infra/ sets it to config.DEFAULT_SYNC_SCHEDULE.
SCHEDULE = f"%{config.SYNC_SCHEDULE}%"
log = logging.getLogger("emply_sync.timer")
# azure-functions does not annotate Blueprint.__init__ (its decorators are typed).
bp = func.Blueprint()  # type: ignore[no-untyped-call]


@bp.timer_trigger(schedule=SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
async def scheduled_sync(timer: func.TimerRequest) -> None:
    # Before the first log line: on a cold start the past-due line was lost otherwise.
    telemetry.configure()
    try:
        if timer.past_due:
            log.warning("emply_sync.timer_past_due", extra={"trigger": "timer"})
        try:
            # A failed run is recorded and logged by the service; a bug propagates.
            await boundary.sync(trigger="timer")
        except boundary.RunInProgress as exc:
            # A manual run is busy: this tick has nothing to add, the next one comes in 30 min.
            log.info(
                "emply_sync.timer_skipped",
                extra={"trigger": "timer", "runningRunId": exc.running_run_id},
            )
        finally:
            await keep_subscriptions()
    finally:
        telemetry.flush()  # after the run record: the host may freeze the worker next


async def keep_subscriptions() -> None:
    """Graph change notifications (issue 16): create missing subscriptions, renew
    expiring ones; nothing unless EMPLY_SYNC_NOTIFICATIONS is true. A failure is logged
    (emply_sync.subscription_failed, the renewal alert's) and never fails the tick."""
    try:
        await renewal.keep()
    except Exception as exc:
        classified = errors.classify(exc)
        reason = (classified.reason if classified is not None else
                  "bad_configuration" if isinstance(exc, ValueError) else errors.BUG_REASON)
        log.error("emply_sync.subscription_failed",
                  extra={"action": "keep", "resource": "all", "reason": reason},
                  exc_info=classified is None)
