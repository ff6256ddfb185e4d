"""The tick workflow DBOS's scheduler starts for each fire time of each schedule.

A tick decides in one step whether to start a run (the schedule is enabled here; with
`overlap: skip`, none of its runs is still going), so a replay after a crash repeats the
decision instead of taking it again against a world its own run has changed. It then starts
the run under the tick's run id (`kinds.run_id`): recording it is idempotent, and queueing
it from the workflow makes it the tick's child in DBOS, which a replay finds recorded.

DBOS refuses configured-instance methods as scheduled workflows, so the scheduled function
is a plain one that hands the tick to the configured instance the executing engine built
(`ScheduleTicks.current`): DBOS's registry is per process, and so is that engine.

This module imports DBOS, so only the executing engine imports it (building the kind).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, ClassVar

from dbos import DBOS, DBOSConfiguredInstance

from orchestrator_mcp.errors import UserError
from orchestrator_mcp.llm import LLMError
from orchestrator_mcp.runs.kinds import INSTANCE
from orchestrator_mcp.runs.steps import RunSteps
from orchestrator_mcp.schedules import kinds
from orchestrator_mcp.schedules.service import ScheduleService, TickOutcome
from orchestrator_mcp.telemetry import metrics

log = logging.getLogger(__name__)


@DBOS.dbos_class(kinds.TICK_CLASS)
class ScheduleTicks(DBOSConfiguredInstance):
    current: ClassVar[ScheduleTicks | None] = None

    def __init__(self, steps: RunSteps, service: ScheduleService) -> None:
        self.steps = steps
        self.service = service
        super().__init__(INSTANCE)
        ScheduleTicks.current = self

    @DBOS.step(name="schedule_decide")
    async def decide(self, name: str, run_id: str) -> dict[str, Any]:
        return (await self.service.decide(name, run_id)).model_dump()

    @DBOS.step(name="schedule_outcome")
    async def settle(self, outcome: dict[str, Any]) -> dict[str, Any]:
        """Count what the tick did, once (a step's record is not run again)."""
        result = TickOutcome.model_validate(outcome)
        metrics.SCHEDULE_TICKS.labels(result.schedule, result.outcome).inc()
        if result.outcome == "error":
            log.warning("schedule %s: the tick's run %s could not start: %s",
                        result.schedule, result.run_id, result.detail)
        return outcome

    async def tick(self, scheduled_at: datetime, context: Any) -> dict[str, Any]:
        name = str(context.get("schedule", "")) if isinstance(context, dict) else ""
        run_id = kinds.run_id(name, scheduled_at)
        decided = TickOutcome.model_validate(await self.decide(name, run_id))
        if decided.outcome != "start":
            return await self.settle(decided.model_dump())
        going = await self._going(decided)
        if going is not None:
            return await self.settle(decided.model_copy(update={
                "outcome": "skipped_overlap", "detail": f"run {going} has not ended"})
                .model_dump())
        try:
            await self.service.start_target(name, run_id)
        except (UserError, LLMError) as exc:  # the configuration: a retry would fail alike
            return await self.settle(decided.model_copy(update={
                "outcome": "error", "detail": str(exc)[:1000]}).model_dump())
        return await self.settle(decided.model_copy(update={"outcome": "started"})
                                 .model_dump())

    @staticmethod
    async def _going(decided: TickOutcome) -> str | None:
        """The first of the schedule's unfinished runs DBOS has a workflow for (each
        look-up is recorded, so a replay sees the same). A run recorded but never queued
        (its tick was stopped between the two, by a shutdown say) is not going, and would
        otherwise hold the schedule forever."""
        for candidate in decided.going:
            if await DBOS.get_workflow_status_async(candidate) is not None:
                return candidate
            log.warning("schedule %s: run %s was recorded but never queued; not waiting for "
                        "it", decided.schedule, candidate)
        return None


@DBOS.workflow(name=kinds.TICK_WORKFLOW)
async def schedule_tick(scheduled_at: datetime, context: Any) -> dict[str, Any]:
    """One fire time of one schedule (its name in `context`)."""
    ticks = ScheduleTicks.current
    if ticks is None:
        raise RuntimeError("schedule tick started before the run engine built its kinds")
    return await ticks.tick(scheduled_at, context)
