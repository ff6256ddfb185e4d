"""The alerts' durable work as run kinds, named without importing DBOS: result delivery and
storm summaries (workflows in `alerts.durable`, built when the executing engine launches
DBOS). Any process starts them by name through `RunEngine.start_durable`; an executor runs
them, and DBOS resumes them after a crash or restart."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator_mcp.config.alerts import AlertsSettings
from orchestrator_mcp.runs.kinds import RunKind

if TYPE_CHECKING:
    from orchestrator_mcp.runs.steps import RunSteps

DELIVERY = "alert-delivery"
DELIVERY_WORKFLOW = "orchestrator_alert_delivery"
DELIVERY_CLASS = "orchestrator_alert_delivery"
STORM = "alert-storm"
STORM_WORKFLOW = "orchestrator_alert_storm"
STORM_CLASS = "orchestrator_alert_storm"


def delivery_id(run_id: str) -> str:
    """The delivery workflow's id: one delivery per run, however often it is started."""
    return f"alert_deliver_{run_id}"


def storm_id(receipt_id: str) -> str:
    """The storm watcher's id, from the oldest deferred notification: every notification
    deferred in one storm names the same watcher."""
    return f"alert_storm_{receipt_id[:16]}"


def run_kinds(settings: AlertsSettings) -> list[RunKind]:
    """Both kinds, for every executing engine whatever the configuration says, so that a
    workflow resumed after a restart always finds its code (it reads the settings when it
    runs). A storm summary starts its run's delivery, so the two share one delivery
    instance."""
    built: dict[str, Any] = {}

    def delivery(steps: RunSteps) -> Any:
        if built.get("steps") is not steps:
            from orchestrator_mcp.alerts.durable import AlertDelivery

            built.update(steps=steps, delivery=AlertDelivery(steps, settings))
        return built["delivery"]

    def storms(steps: RunSteps) -> Any:
        from orchestrator_mcp.alerts.durable import StormSummary

        return StormSummary(steps, settings, delivery(steps))

    return [RunKind(DELIVERY, DELIVERY_WORKFLOW, DELIVERY_CLASS, delivery),
            RunKind(STORM, STORM_WORKFLOW, STORM_CLASS, storms)]
