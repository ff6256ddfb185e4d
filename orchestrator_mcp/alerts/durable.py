"""The alerts' durable work as DBOS workflows: delivering a run's outcome to
`alerts.deliver_url`, and summarising the notifications a storm deferred into one run.

Both are configured instances built by the executing engine before DBOS launches (kinds in
`alerts.kinds`), so DBOS resumes them after a crash or restart wherever an executor runs:
a delivery pending when the process died is sent after the restart, a storm watcher goes on
waiting where it was. This module imports DBOS, so only the executing engine imports it.
"""

from __future__ import annotations

import asyncio
import logging
import time
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
from orchestrator_mcp.runs.models import RunRecord
from orchestrator_mcp.runs.steps import RunSteps
from orchestrator_mcp.telemetry import metrics

log = logging.getLogger(__name__)

# A delivery is tried up to 8 times: at once, then after waits of 2 s growing ×2.4 (2, 4.8,
# 11.5, 27.6, 66, 159, 382 s), so the last attempt is ≈ 11 minutes after the first. Only
# connection errors, timeouts, 408, 429 and 5xx are retried; any other 4xx, or a 3xx
# (redirects are not followed: the URL is the only place deliveries go), is final.
DELIVERY_ATTEMPTS = 8
DELIVERY_FIRST_WAIT = 2.0
DELIVERY_BACKOFF = 2.4
DELIVERY_TIMEOUT = 10.0  # seconds for one POST
OUTCOME_WAIT = 10.0  # a cancelled run's record says so just after its workflow stops
STORM_CHECK_SECONDS = 5.0  # how often a storm watcher looks whether the storm has passed


class DeliveryFailed(Exception):
    """An attempt worth repeating. Its message never holds the URL, whose query may carry
    a secret (DBOS logs it and records it with the step)."""


def delivery_body(record: RunRecord) -> dict[str, Any]:
    """Slack-compatible `text`, plus the run's fields."""
    outcome = record.answer or record.error or ""
    return {
        "text": f"[{record.status.value}] {record.goal[:300]}\n{outcome[:3000]}",
        "run_id": record.id, "status": record.status.value,
        "stop_reason": record.stop_reason.value if record.stop_reason else None,
        "answer": record.answer, "error": record.error,
    }


def storm_goal(notes: list[Notification]) -> str:
    lines = [f"- {n.status}: " + ", ".join(f"{k}={v}" for k, v in sorted(n.labels.items()))
             for n in notes[:50]]
    return (f"An alert storm deferred {len(notes)} notifications. Find what they have in "
            "common and diagnose the shared cause first:\n" + "\n".join(lines))


class _AlertWork(DBOSConfiguredInstance):
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


@DBOS.dbos_class(kinds.DELIVERY_CLASS)
class AlertDelivery(_AlertWork):
    @DBOS.workflow(name=kinds.DELIVERY_WORKFLOW)
    async def run(self, run_id: str) -> str:
        """Wait for the run to end, POST its outcome, mark its alert group delivered.
        Returns what happened."""
        if await DBOS.get_workflow_status_async(run_id) is None:
            log.warning("alert delivery: run %s was never queued; nothing to deliver", run_id)
            return "no_run"
        try:
            await DBOS.get_result_async(run_id)
        except Exception:  # noqa: BLE001 - failed and cancelled runs are delivered too
            pass
        body = await self.outcome(run_id)
        if body is None:
            return "no_outcome"
        if not self.settings.deliver_url:
            log.info("alert delivery of run %s skipped: alerts.deliver_url is not set", run_id)
            return "not_configured"
        try:
            status = await self.post(body)
        except Exception as exc:  # noqa: BLE001 - DBOS gave up retrying
            log.warning("alert delivery of run %s gave up after %d attempts: %s", run_id,
                        DELIVERY_ATTEMPTS, exc)
            return "gave_up"
        if status >= 300:
            log.warning("alert delivery of run %s was refused with HTTP %s; not retried",
                        run_id, status)
            return f"refused_{status}"
        await self.mark_delivered(run_id)
        return "delivered"

    @DBOS.step(name="alert_delivery_outcome")
    async def outcome(self, run_id: str) -> dict[str, Any] | None:
        """The body to POST; None when the run's record is gone or never says it ended."""
        deadline = time.monotonic() + OUTCOME_WAIT
        while True:
            record = await self.steps.db(self.steps.ports.store.get, run_id, with_steps=False)
            if record is None:
                log.warning("alert delivery: run %s is not in the runs table", run_id)
                return None
            if record.status.finished:
                return delivery_body(record)
            if time.monotonic() >= deadline:
                log.warning("alert delivery: run %s stopped but its record says %s; not "
                            "delivered", run_id, record.status.value)
                return None
            await asyncio.sleep(0.1)

    @DBOS.step(name="alert_delivery_post", retries_allowed=True,
               max_attempts=DELIVERY_ATTEMPTS, interval_seconds=DELIVERY_FIRST_WAIT,
               backoff_rate=DELIVERY_BACKOFF)
    async def post(self, body: dict[str, Any]) -> int:
        """One attempt: the HTTP status when final (2xx; 3xx, as redirects are not
        followed; a 4xx not worth repeating), DeliveryFailed when worth repeating."""
        import httpx2

        url = self.settings.deliver_url
        if not url:
            raise DeliveryFailed("alerts.deliver_url is no longer set")
        try:
            async with httpx2.AsyncClient(timeout=DELIVERY_TIMEOUT,
                                          follow_redirects=False) as http:
                response = await http.post(url, json=body)
            status = response.status_code
            failure = f"HTTP {status}" if status in (408, 429) or status >= 500 else None
        except httpx2.HTTPError as exc:
            failure = type(exc).__name__
        if failure is not None:
            log.warning("alert delivery of run %s failed: %s", body["run_id"], failure)
            raise DeliveryFailed(failure)
        return status

    @DBOS.step(name="alert_delivery_done")
    async def mark_delivered(self, run_id: str) -> None:
        store = await self.alerts()
        await asyncio.to_thread(store.mark_delivered, run_id)


@DBOS.dbos_class(kinds.STORM_CLASS)
class StormSummary(_AlertWork):
    def __init__(self, steps: RunSteps, settings: AlertsSettings, delivery: AlertDelivery
                 ) -> None:
        self.delivery = delivery
        super().__init__(steps, settings)

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
            if self.settings.deliver_url:
                with SetWorkflowID(kinds.delivery_id(run_id)):
                    await DBOS.start_workflow_async(self.delivery.run, run_id)
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
