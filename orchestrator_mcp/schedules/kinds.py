"""Names of the schedules' durable work, without importing DBOS: the tick workflow, the
DBOS schedule of each configured schedule, and the run id of each (schedule, tick).

DBOS's scheduler enqueues one tick workflow per (DBOS schedule, fire time), with an id made
of both (`sched-<schedule>-<time>`), so a tick fired by several processes is one workflow;
the run it starts has an id made of the same two, so a tick can never start two runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from orchestrator_mcp.runs.kinds import RunKind

if TYPE_CHECKING:
    from orchestrator_mcp.runs.steps import RunSteps
    from orchestrator_mcp.schedules.service import ScheduleService

TICKS = "schedule-tick"
TICK_WORKFLOW = "orchestrator_schedule_tick"
TICK_CLASS = "orchestrator_schedule_ticks"
# Ticks queue apart, one at a time across every process: a tick decides on overlap from the
# runs earlier ticks started, so the one before it must have started its run by then (ticks
# take milliseconds; runs execute on the run queue).
TICK_QUEUE = "orchestrator_schedule_ticks"
TICK_QUEUE_POLL_SECONDS = 0.1
DBOS_PREFIX = "orch:"  # our schedules among DBOS's (a removed one is deleted by this prefix)


def dbos_name(schedule: str) -> str:
    return f"{DBOS_PREFIX}{schedule}"


def run_id_prefix(schedule: str) -> str:
    """What the ids of a schedule's runs start with ('.' is in no schedule name, so
    'disk' and 'disk-x' never share one)."""
    return f"sch_{schedule}."


def run_id(schedule: str, tick: datetime) -> str:
    """The run a tick starts: `sch_<schedule>.<tick as UTC>`, at most 53 characters."""
    return f"{run_id_prefix(schedule)}{tick.astimezone(UTC):%Y%m%dT%H%M%SZ}"


def run_kind(service: ScheduleService) -> RunKind:
    """The tick workflow's kind, for every executing engine whatever the configuration
    says, so a tick resumed after a restart always finds its code."""
    def build(steps: RunSteps) -> Any:
        from orchestrator_mcp.schedules.durable import ScheduleTicks

        return ScheduleTicks(steps, service)

    return RunKind(TICKS, TICK_WORKFLOW, TICK_CLASS, build)
