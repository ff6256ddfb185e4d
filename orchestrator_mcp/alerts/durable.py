"""The alerts' durable work as a DBOS workflow: summarising the notifications a storm
deferred into one run.

A configured instance built by the executing engine before DBOS launches (its kind in
`alerts.kinds`), so DBOS resumes it after a crash or restart wherever an executor runs: a
storm watcher goes on waiting where it was. This module imports DBOS, so only the
executing engine imports it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dbos import DBOS, DBOSConfiguredInstance, SetWorkflowID

from orchestrator_mcp.alerts import kinds
from orchestrator_mcp.alerts.payload import Notification
from orchestrator_mcp.alerts.service import match_rule
from orchestrator_mcp.alerts.store import AlertStore
from orchestrator_mcp.config.alerts import AlertsSettings
from orchestrator_mcp.errors import UserError
from orchestrator_mcp.llm import LLMError
from orchestrator_mcp.runs.kinds import INSTANCE
from orchestrator_mcp.runs.steps import RunSteps
from orchestrator_mcp.telemetry import metrics

log = logging.getLogger(__name__)

STORM_CHECK_SECONDS = 5.0  # how often a storm watcher looks whether the storm has passed


def storm_goal(notes: list[Notification]) -> str:
    lines = [f"- {n.status}: " + ", ".join(f"{k}={v}" for k, v in sorted(n.labels.items()))
             for n in notes[:50]]
    return (f"An alert storm deferred {len(notes)} notifications. Find what they have in "
            "common and diagnose the shared cause first:\n" + "\n".join(lines))


@DBOS.dbos_class(kinds.STORM_CLASS)
class StormSummary(DBOSConfiguredInstance):
    def __init__(self, steps: RunSteps, settings: AlertsSettings) -> None:
        self.steps = steps
        self.settings = settings
        self._store: AlertStore | None = None
        super().__init__(INSTANCE)

    async def alerts(self) -> AlertStore:
        """The alert tables (beside the runs table), opened on first use."""
        if self._store is None:
            self._store = await asyncio.to_thread(AlertStore, self.steps.ports.store.engine)
        return self._store

    @DBOS.workflow(name=kinds.STORM_WORKFLOW)
    async def run(self, first_receipt: str) -> str | None:
        """Every STORM_CHECK_SECONDS (durable sleeps): while notifications are deferred and
        the storm goes on, wait; once it has passed, summarise every deferred notification
        into one run. Ends early when none are left (another watcher summarised them).
        The loop is bounded: while it storms, alerts open no runs, so the storm passes
        within a minute of the last run it counted. Returns the summary run's id."""
        while True:
            await DBOS.sleep_async(STORM_CHECK_SECONDS)
            state = await self.check()
            if not state["deferred"]:
                return None
            if not state["storming"]:
                break
        run_id = (await self.summarize()).get("run_id")
        if run_id is not None:
            await self.steps.ports.children.enqueue(run_id)
        # A notification deferred after `summarize` read them was left for this watcher by
        # the processor that deferred it (this one was still running): hand it on.
        following = await self.oldest_deferred()
        if following is not None and kinds.storm_id(following) != kinds.storm_id(first_receipt):
            with SetWorkflowID(kinds.storm_id(following)):
                await DBOS.start_workflow_async(self.run, following)
        return run_id

    @DBOS.step(name="alert_storm_check")
    async def check(self) -> dict[str, Any]:
        store = await self.alerts()
        return {"deferred": await asyncio.to_thread(store.deferred_count),
                "storming": await asyncio.to_thread(
                    store.storming, self.settings.max_new_runs_per_minute)}

    @DBOS.step(name="alert_storm_next")
    async def oldest_deferred(self) -> str | None:
        store = await self.alerts()
        return await asyncio.to_thread(store.oldest_deferred)

    @DBOS.step(name="alert_storm_summary")
    async def summarize(self) -> dict[str, Any]:
        """Record the summary run (id from the oldest deferred notification, so watchers
        racing make the same run) and settle the notifications it covers."""
        store = await self.alerts()
        deferred = await asyncio.to_thread(store.pending, "deferred")
        if not deferred:
            return {}
        notes = [Notification.model_validate(d.body) for d in deferred]
        receipts = [d.receipt_id for d in deferred]
        rule = match_rule(self.settings.rules, notes[0].labels)
        rule_name = rule.name if rule else None
        run_id = f"run_storm_{receipts[0][:16]}"
        try:
            await self.steps.ports.children.create(
                storm_goal(notes), rule.profile if rule else "default",
                {"deferred": len(notes)}, source="alertmanager", run_id=run_id)
        except (UserError, LLMError) as exc:  # a configuration problem: retrying won't help
            failed = await asyncio.to_thread(store.settle_deferred, receipts, outcome="error",
                                             rule=rule_name, detail=str(exc))
            log.warning("alert storm summary could not start: %s", exc)
            metrics.ALERT_NOTIFICATIONS.labels("error", rule_name or "").inc(failed)
            return {}
        summarized = await asyncio.to_thread(store.settle_deferred, receipts,
                                             outcome="summarized", rule=rule_name,
                                             run_id=run_id)
        await asyncio.to_thread(store.open_group, f"storm:{run_id}", rule_name or "storm",
                                run_id)
        metrics.ALERT_NOTIFICATIONS.labels("summarized", rule_name or "").inc(summarized)
        return {"run_id": run_id, "summarized": summarized}
