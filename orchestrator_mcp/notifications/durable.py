"""One notification delivery as a DBOS workflow: a run event, told to one target.

The workflow builds the notice (a step, so a resumed delivery sends what the first attempt
would have), then tries to POST it: each attempt is a step and the waits between attempts
are durable sleeps, so after a crash or restart the delivery goes on with the attempt and
the wait where it stopped, and the run's record says how many attempts failed. Last, it
notes the outcome in the run's history and counts it in the metrics. This module imports
DBOS, so only the executing engine imports it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from dbos import DBOS, DBOSConfiguredInstance

from orchestrator_mcp.config.notifications import NotificationEvent, NotificationsSettings
from orchestrator_mcp.notifications import kinds, messages
from orchestrator_mcp.runs.kinds import INSTANCE
from orchestrator_mcp.runs.models import StepRecord
from orchestrator_mcp.runs.steps import RunSteps
from orchestrator_mcp.telemetry import metrics

log = logging.getLogger(__name__)

# Up to 8 attempts: at once, then after waits of 2 s growing ×2.4 (2, 4.8, 11.5, 27.6, 66,
# 159, 382 s), the last ≈ 11 minutes after the first. Connection errors, timeouts, 408,
# 429 and 5xx are tried again; any other 4xx, or a 3xx (redirects are not followed: the
# URL is the only place a notice goes), is final.
ATTEMPTS = 8
FIRST_WAIT = 2.0
BACKOFF = 2.4


@DBOS.dbos_class(kinds.DELIVERY_CLASS)
class NotificationDelivery(DBOSConfiguredInstance):
    def __init__(self, steps: RunSteps, settings: NotificationsSettings) -> None:
        self.steps = steps
        self.settings = settings
        super().__init__(INSTANCE)

    @DBOS.workflow(name=kinds.DELIVERY_WORKFLOW)
    async def run(self, run_id: str, seq: int, target: str, alert_rule: str | None) -> str:
        """Tell `target` about event `seq` of the run; returns the outcome: delivered,
        refused (a final answer), gave_up (every attempt failed), or skipped."""
        notice = await self.compose(run_id, seq, alert_rule)
        if notice is None:
            return "skipped"
        failures: list[str] = []
        wait = FIRST_WAIT
        outcome = "gave_up"
        for attempt in range(1, ATTEMPTS + 1):
            result = await self.attempt(target, notice, attempt)
            if result["outcome"] != "retry":
                outcome = result["outcome"]
                if outcome == "refused":
                    failures.append(result["error"])
                break
            failures.append(result["error"])
            if attempt < ATTEMPTS:
                await DBOS.sleep_async(wait)
                wait *= BACKOFF
        await self.record(run_id, target, notice["event"], outcome, failures)
        return outcome

    @DBOS.step(name="notification_compose")
    async def compose(self, run_id: str, seq: int, alert_rule: str | None
                      ) -> dict[str, Any] | None:
        """The notice for the run's event `seq`; None when the run or event is gone."""
        store = self.steps.ports.store
        record = await self.steps.db(store.get, run_id, with_steps=False)
        head, events = await self.steps.db(store.events_after, run_id, seq - 1, 2)
        if record is None or head is None or not events or events[0].id != seq:
            log.warning("notification: run %s has no event %d; nothing to send", run_id, seq)
            return None
        event = NotificationEvent(events[0].data["status"])
        at = float(events[0].data.get("finished_at") or events[0].data.get("updated_at")
                   or time.time())
        pending = next((e.data.get("pending_approval") for e in events[1:]
                        if e.id == seq + 1 and e.event == "approval"), None)
        return messages.notice(record, seq, event, at, pending=pending,
                               alert_rule=alert_rule, public_url=self.settings.public_url)

    @DBOS.step(name="notification_attempt")
    async def attempt(self, target: str, notice: dict[str, Any], attempt: int
                      ) -> dict[str, Any]:
        """One POST: {"outcome": delivered | refused | retry | skipped, "error": …}. The
        URL and the secret are read here from the configuration, never passed in or
        returned: DBOS records a step's arguments and result."""
        import httpx2

        settings = self.settings.target(target)
        if settings is None:
            log.warning("notification target %r is no longer configured; %s not sent",
                        target, notice["event"])
            return {"outcome": "skipped", "error": "target no longer configured"}
        body = messages.encode(notice, settings.format)
        timestamp = str(int(time.time()))
        sent = messages.headers(f"{notice['run_id']}:{notice['seq']}", timestamp, body,
                                settings.secret)
        try:
            # httpx's timeout bounds each read; this bounds a receiver that trickles bytes
            async with asyncio.timeout(settings.timeout_seconds), httpx2.AsyncClient(
                    timeout=settings.timeout_seconds, follow_redirects=False) as http:
                async with http.stream("POST", settings.url, content=body,
                                       headers=sent) as response:
                    status = response.status_code  # the body is not read: it may be huge
        except (httpx2.HTTPError, TimeoutError) as exc:  # the message may hold the URL
            error = type(exc).__name__
            metrics.NOTIFICATION_FAILED_ATTEMPTS.labels(target).inc()
            log.warning("notification of run %s to %r, attempt %d, failed: %s",
                        notice["run_id"], target, attempt, error)
            return {"outcome": "retry", "error": error}
        if 200 <= status < 300:
            return {"outcome": "delivered", "error": None}
        metrics.NOTIFICATION_FAILED_ATTEMPTS.labels(target).inc()
        retry = status in (408, 429) or status >= 500
        log.warning("notification of run %s to %r, attempt %d: HTTP %d%s", notice["run_id"],
                    target, attempt, status, "" if retry else "; final, not tried again")
        return {"outcome": "retry" if retry else "refused", "error": f"HTTP {status}"}

    @DBOS.step(name="notification_record")
    async def record(self, run_id: str, target: str, event: str, outcome: str,
                     failures: list[str]) -> None:
        """Note the outcome in the run's history and count it."""
        metrics.NOTIFICATIONS.labels(target, event, outcome).inc()
        if outcome == "delivered":
            summary = f"notified {target} ({event})"
            if failures:
                summary += (f" after {len(failures)} failed attempt"
                            f"{'s' if len(failures) > 1 else ''} ({', '.join(failures)})")
        elif outcome == "refused":
            summary = f"notification to {target} ({event}) refused: {failures[-1]}"
        elif outcome == "gave_up":
            summary = (f"notification to {target} ({event}) failed: gave up after "
                       f"{len(failures)} attempts (last: {failures[-1]})")
        else:
            summary = f"notification to {target} ({event}) skipped: the target is gone"
        step = StepRecord(n=0, kind="note", at=time.time(), summary=summary,
                          detail={"notification": {"target": target, "event": event,
                                                   "outcome": outcome,
                                                   "failed_attempts": failures}})
        if await self.steps.db(self.steps.ports.store.add_note, run_id, step):
            self.steps.ports.notify(run_id)
        if outcome != "delivered":
            log.warning("run %s: %s", run_id, summary)
