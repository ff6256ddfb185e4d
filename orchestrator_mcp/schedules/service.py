"""Schedules beside the runs: handing the configured schedules to DBOS's scheduler, what a
tick starts, and what `list_schedules` shows.

Every process that executes runs hands the enabled schedules to DBOS at start (an upsert
by name, so replicas agree) and deletes the DBOS schedules of ours that are gone or
disabled. DBOS's scheduler runs in each of them; the tick ids make a tick one workflow.

Ticks missed while no process executed runs: DBOS's own backfill would start every one of
them; `missed: run_once` starts only the latest (through DBOS's backfill of that one tick,
which uses the scheduler's own tick id, so a tick another replica fired is not repeated),
and `missed: skip` starts none.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from orchestrator_mcp.config.schedules import ScheduleDef
from orchestrator_mcp.runs.models import RunRecord, RunStatus
from orchestrator_mcp.schedules import kinds
from orchestrator_mcp.telemetry import metrics
from orchestrator_mcp.workflows.submit import WorkflowRuns

if TYPE_CHECKING:
    from orchestrator_mcp.runs.engine import RunEngine
    from orchestrator_mcp.workflows.templates import TemplateRuns

log = logging.getLogger(__name__)

SOURCE = "schedule"  # the runs' `source`
NEXT_FIRES = 3  # fire times list_schedules shows

Outcome = Literal["start", "started", "skipped_overlap", "skipped_disabled", "unknown",
                  "error"]


class TickOutcome(BaseModel):
    schedule: str
    run_id: str
    outcome: Outcome
    detail: str | None = None
    going: list[str] = Field(default_factory=list,
                             description="the schedule's runs not ended (overlap: skip)")


class LastRun(BaseModel):
    run_id: str
    status: RunStatus
    started_at: float
    finished_at: float | None
    outcome: str | None = Field(description="the run's answer or error, shortened")


class ScheduleView(BaseModel):
    name: str
    description: str
    target: str = Field(description="what each tick starts")
    cron: str
    timezone: str
    enabled: bool
    overlap: str
    missed: str
    next_fires: list[str] = Field(description="the next fire times (ISO 8601, the "
                                  "schedule's time zone); empty when disabled")
    last_run: LastRun | None = None


class ScheduleService:
    def __init__(self, schedules: Mapping[str, ScheduleDef], engine: RunEngine,
                 workflows: WorkflowRuns, templates: TemplateRuns) -> None:
        self.schedules = schedules
        self.engine = engine
        self.workflows = workflows
        self.templates = templates
        for name in schedules:  # each schedule's series exist from the start, at 0
            for outcome in ("started", "skipped_overlap", "skipped_disabled", "error"):
                metrics.SCHEDULE_TICKS.labels(name, outcome)

    # ---- at start, in processes that execute runs --------------------------------------

    async def start(self) -> None:
        """Hand the enabled schedules to DBOS's scheduler; delete ours it has that are gone
        or disabled; start the latest missed tick of `missed: run_once` schedules."""
        if not self.engine.executor:
            return
        from dbos import DBOS

        from orchestrator_mcp.schedules.durable import schedule_tick

        now = datetime.now(UTC)
        await DBOS.register_queue_async(kinds.TICK_QUEUE, global_concurrency=1,
                                        polling_interval_sec=kinds.TICK_QUEUE_POLL_SECONDS)
        known = {s["schedule_name"]: s for s in
                 await DBOS.list_schedules_async(schedule_name_prefix=kinds.DBOS_PREFIX)}
        wanted = {kinds.dbos_name(name): (name, schedule)
                  for name, schedule in self.schedules.items() if schedule.enabled}
        for stale in sorted(set(known) - set(wanted)):
            await DBOS.delete_schedule_async(stale)
        if wanted:
            await DBOS.apply_schedules_async([
                {"schedule_name": dbos_name, "workflow_fn": schedule_tick,
                 "schedule": schedule.cron, "cron_timezone": schedule.timezone,
                 "context": {"schedule": name}, "queue_name": kinds.TICK_QUEUE}
                for dbos_name, (name, schedule) in sorted(wanted.items())])
        for dbos_name, (name, schedule) in sorted(wanted.items()):
            fired_before = (known.get(dbos_name) or {}).get("last_fired_at")
            if schedule.missed == "run_once" and fired_before:
                await self._run_latest_missed(dbos_name, name, schedule, now)

    @staticmethod
    async def _run_latest_missed(dbos_name: str, name: str, schedule: ScheduleDef,
                                 now: datetime) -> None:
        """Start the schedule's last tick before `now` unless some process did (DBOS's
        backfill of exactly that tick, under the scheduler's own id for it)."""
        from dbos import DBOS

        latest, previous = schedule.latest_tick(now)
        handles = await asyncio.to_thread(DBOS.backfill_schedule, dbos_name, previous,
                                          latest + timedelta(microseconds=1))
        if handles:
            log.info("schedule %s: started its missed tick of %s (missed: run_once)", name,
                     latest.isoformat())

    # ---- what a tick does (called by the tick workflow) --------------------------------

    async def decide(self, name: str, run_id: str) -> TickOutcome:
        schedule = self.schedules.get(name)
        if schedule is None:
            return TickOutcome(schedule=name, run_id=run_id, outcome="unknown",
                               detail="no such schedule in this process's profiles.yaml")
        if not schedule.enabled:
            return TickOutcome(schedule=name, run_id=run_id, outcome="skipped_disabled")
        going = []
        if schedule.overlap == "skip":
            going = [r.id for r in await self.engine.list(
                id_prefix=kinds.run_id_prefix(name), unfinished=True, limit=20)
                if r.id != run_id]
        return TickOutcome(schedule=name, run_id=run_id, outcome="start", going=going)

    async def start_target(self, name: str, run_id: str) -> RunRecord:
        """Record and queue the tick's run under `run_id` (again: nothing changes)."""
        schedule = self.schedules[name]
        if schedule.template is not None:
            return await self.templates.submit(schedule.template, schedule.inputs,
                                               source=SOURCE, run_id=run_id)
        if schedule.workflow is not None:
            return await self.workflows.submit(schedule.workflow, schedule.inputs,
                                               source=SOURCE, run_id=run_id)
        assert schedule.goal is not None
        return await self.engine.submit(schedule.goal, schedule.profile,
                                        schedule.inputs or None, source=SOURCE, run_id=run_id)

    # ---- list_schedules ------------------------------------------------------------------

    async def views(self) -> list[ScheduleView]:
        now = datetime.now(UTC)
        views = []
        for name, schedule in sorted(self.schedules.items()):
            last = await self.engine.list(id_prefix=kinds.run_id_prefix(name), limit=1)
            views.append(ScheduleView(
                name=name, description=schedule.description, target=schedule.target,
                cron=schedule.cron, timezone=schedule.timezone, enabled=schedule.enabled,
                overlap=schedule.overlap, missed=schedule.missed,
                next_fires=[t.isoformat() for t in schedule.ticks_after(now, NEXT_FIRES)]
                if schedule.enabled else [],
                last_run=_last_run(last[0]) if last else None))
        return views


def _last_run(record: RunRecord) -> LastRun:
    outcome = record.answer or record.error
    return LastRun(run_id=record.id, status=record.status, started_at=record.created_at,
                   finished_at=record.finished_at,
                   outcome=outcome[:500] if outcome else None)

