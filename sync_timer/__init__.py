"""Timer trigger: a sync on the app setting's schedule, every 30 minutes by default (R1)."""

from __future__ import annotations

import logging

import azure.functions as func

from shared import config, service
from shared import store as store_mod

# The host reads the schedule from the app setting (%NAME%), so operators change
# it without a code change; infra/ sets it to config.DEFAULT_SYNC_SCHEDULE.
SCHEDULE = f"%{config.SYNC_SCHEDULE}%"
log = logging.getLogger("emply_sync.timer")
bp = func.Blueprint()


@bp.timer_trigger(schedule=SCHEDULE, arg_name="timer", run_on_startup=False, use_monitor=True)
async def scheduled_sync(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.warning("emply_sync.timer_past_due", extra={"trigger": "timer"})
    try:
        async with service.open_deps() as deps:
            await service.run_sync(deps, trigger="timer")
    except store_mod.RunInProgress as exc:
        # A manual run is busy: this tick has nothing to add; the next tick runs as usual.
        log.info(
            "emply_sync.timer_skipped",
            extra={"trigger": "timer", "runningRunId": exc.running_run_id},
        )
