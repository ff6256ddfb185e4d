"""The alerts' durable work as a run kind, named without importing DBOS: storm summaries
(the workflow in `alerts.durable`, built when the executing engine launches DBOS). Any
process starts one by name through `RunEngine.start_durable`; an executor runs it, and
DBOS resumes it after a crash or restart. (Alert runs' outcomes are sent by
`notifications`, like any run's.)"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator_mcp.config.alerts import AlertsSettings
from orchestrator_mcp.runs.kinds import RunKind

if TYPE_CHECKING:
    from orchestrator_mcp.runs.steps import RunSteps

STORM = "alert-storm"
STORM_WORKFLOW = "orchestrator_alert_storm"
STORM_CLASS = "orchestrator_alert_storm"


def storm_id(receipt_id: str) -> str:
    """The storm watcher's id, from the oldest deferred notification: every notification
    deferred in one storm names the same watcher."""
    return f"alert_storm_{receipt_id[:16]}"


def run_kinds(settings: AlertsSettings) -> list[RunKind]:
    """The kind, for every executing engine whatever the configuration says, so that a
    workflow resumed after a restart always finds its code (it reads the settings when it
    runs)."""

    def storms(steps: RunSteps) -> Any:
        from orchestrator_mcp.alerts.durable import StormSummary

        return StormSummary(steps, settings)

    return [RunKind(STORM, STORM_WORKFLOW, STORM_CLASS, storms)]
