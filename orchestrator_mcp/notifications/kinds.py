"""The notification delivery as a durable kind, named without importing DBOS (the workflow
is in `notifications.durable`, built when the executing engine launches DBOS)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator_mcp.config.notifications import NotificationsSettings
from orchestrator_mcp.runs.kinds import RunKind

if TYPE_CHECKING:
    from orchestrator_mcp.runs.steps import RunSteps

DELIVERY = "notification"
DELIVERY_WORKFLOW = "orchestrator_notification"
DELIVERY_CLASS = "orchestrator_notification"


def delivery_id(run_id: str, seq: int, target: str) -> str:
    """One delivery per run event and target, however often (or wherever) it is started."""
    return f"notify:{run_id}:{seq}:{target}"


def run_kinds(settings: NotificationsSettings) -> list[RunKind]:
    """The kind, for every executing engine whatever the configuration says, so that a
    delivery resumed after a restart finds its code (it reads the targets when it runs)."""

    def build(steps: RunSteps) -> Any:
        from orchestrator_mcp.notifications.durable import NotificationDelivery

        return NotificationDelivery(steps, settings)

    return [RunKind(DELIVERY, DELIVERY_WORKFLOW, DELIVERY_CLASS, build)]
