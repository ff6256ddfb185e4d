"""Alertmanager notifications → runs: receipt, routing, dedup, lifecycle, storm control.

A notification is stored before it is acknowledged (`receive`); one processor task then
handles stored notifications in arrival order (`_process`), so dedup decisions never race.
A crash between the two is repaired at start: every stored, unprocessed notification is
processed again. Runs created for a notification have an id derived from it, so doing that
twice creates one run.

What must outlast the process is durable DBOS work (`alerts.durable`), started here by name
through the run engine, so a process that does not execute runs starts it too: a storm
watcher that turns deferred notifications into one summary run once the storm has passed
(id from the oldest deferred notification, so one per storm). Alert runs' outcomes are
sent by `notifications`, like any run's (a target's `alert_rules` picks them).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import logging
import re
import sqlite3
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from orchestrator_mcp.alerts import kinds as durable_kinds
from orchestrator_mcp.alerts.payload import Notification
from orchestrator_mcp.config.alerts import AlertRule, AlertsSettings
from orchestrator_mcp.db.peek import finds_a_row, sqlite_path
from orchestrator_mcp.errors import UserError
from orchestrator_mcp.runs.engine import RunEngine, RunNotFound
from orchestrator_mcp.telemetry import metrics
from orchestrator_mcp.workflows.submit import WorkflowRuns

if TYPE_CHECKING:
    from orchestrator_mcp.alerts.store import AlertStore

log = logging.getLogger(__name__)

START_WAIT_SECONDS = 30.0


class Rejection(UserError):
    """A webhook request refused at receipt (auth, size, JSON, shape)."""

    def __init__(self, status: int, error: str, detail: Any) -> None:
        super().__init__(detail if isinstance(detail, str) else error)
        self.status, self.code, self.detail = status, error, detail


def match_rule(rules: list[AlertRule], labels: dict[str, str]) -> AlertRule | None:
    for rule in rules:
        if all(labels.get(k) == v for k, v in rule.match.items()) and all(
            re.fullmatch(p, labels.get(k, "")) for k, p in rule.match_re.items()
        ):
            return rule
    return None


@functools.cache
def _templates() -> Any:
    from jinja2.sandbox import SandboxedEnvironment  # imported when the first alert arrives

    return SandboxedEnvironment(autoescape=False)


def _render(template: str, notification: Notification) -> str:
    return _templates().from_string(template).render(
        status=notification.status, labels=notification.labels,
        annotations=notification.common_annotations or notification.alerts[0].annotations,
        alerts=[a.model_dump() for a in notification.alerts], group_key=notification.group_key,
    ).strip()[:10_000]


def render_goal(rule: AlertRule, notification: Notification) -> str:
    return _render(rule.goal, notification)


class AlertService:
    def __init__(self, settings: AlertsSettings, engine: RunEngine, workflows: WorkflowRuns,
                 http_token: str | None) -> None:
        self.settings = settings
        self.engine = engine
        self.workflows = workflows
        from orchestrator_mcp.auth import Principal, TokenTable

        webhook = Principal("alertmanager", frozenset({"alerts"}))
        self._tokens = TokenTable((t, webhook) for t in (settings.token, http_token) if t)
        self.store: AlertStore | None = None  # opened by start()
        # (receipt, the notification if this process parsed it, else None: reload it)
        self._queue: asyncio.Queue[tuple[str, Notification | None]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._started = asyncio.Event()
        self._storm_watcher: str | None = None  # the last one this process started

    # ---- receipt (the HTTP handler's part) ------------------------------------------

    def authenticate(self, authorization: str | None, body: bytes, signature: str | None) -> None:
        if self._tokens.principal(authorization) is None:
            raise Rejection(401, "unauthorized", "missing or invalid bearer token; set "
                            "http_config.authorization.credentials in Alertmanager's receiver "
                            "to alerts.token (profiles.yaml) or ORCH_HTTP_TOKEN")
        if self.settings.hmac_secret:
            expected = "sha256=" + hmac.new(self.settings.hmac_secret.encode(), body,
                                            hashlib.sha256).hexdigest()
            if not hmac.compare_digest((signature or "").encode(), expected.encode()):
                raise Rejection(401, "bad_signature", "X-Signature-256 does not match the "
                                "body signed with alerts.hmac_secret")

    @staticmethod
    def parse(body: bytes) -> Notification:
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise Rejection(400, "invalid_json", f"body is not JSON: {exc}") from None
        except RecursionError:
            raise Rejection(400, "invalid_json", "body is nested too deeply to be an "
                            "Alertmanager notification") from None
        try:  # JSON may escape a lone surrogate that no store can keep: refuse it now
            json.dumps(data, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise Rejection(400, "invalid_json", "body holds an invalid \\u escape (a lone "
                            "UTF-16 surrogate); send valid Unicode") from None
        except RecursionError:
            raise Rejection(400, "invalid_json", "body is nested too deeply") from None
        try:
            return Notification.model_validate(data)
        except ValidationError as exc:
            problems = [
                {"field": ".".join(str(p) for p in e["loc"]) or "(body)", "problem": e["msg"]}
                for e in exc.errors(include_input=False, include_url=False)[:20]
            ]
            raise Rejection(400, "invalid_payload", problems) from None

    async def receive(self, notification: Notification) -> tuple[str, bool]:
        """Store it (durably) and queue it; returns (receipt id, new?)."""
        if self.store is None:
            try:
                await asyncio.wait_for(self._started.wait(), START_WAIT_SECONDS)
            except TimeoutError:
                raise Rejection(503, "unavailable", "alert handling is starting or did not "
                                "start; see the server log") from None
        assert self.store is not None
        receipt = notification.receipt_id
        new = await asyncio.to_thread(
            self.store.receive, receipt, notification.group_id, notification.status,
            notification.model_dump(by_alias=True))
        if new:
            self._queue.put_nowait((receipt, notification))
        else:
            metrics.ALERT_NOTIFICATIONS.labels("duplicate_delivery", "").inc()
        return receipt, new

    # ---- processing -----------------------------------------------------------------

    def left_waiting(self) -> bool:
        """Whether the embedded files hold notifications another process received and did
        not finish (blocking; sqlite3 read-only, so that nothing of SQLAlchemy is loaded to
        ask). False on a shared database: its replicas take them up."""
        if self.engine.database.shared:
            return False
        try:
            return finds_a_row(sqlite_path(self.engine.database.store_url),
                               "SELECT 1 FROM orch_alert_notifications WHERE state IN "
                               "('received', 'deferred') LIMIT 1")
        except sqlite3.Error:
            return True  # cannot tell: start() opens the store and says what is wrong

    async def start(self) -> None:
        from orchestrator_mcp.alerts.store import AlertStore  # SQLAlchemy: not at import

        await self.engine.ready()
        self.store = await asyncio.to_thread(AlertStore, self.engine.sql_engine)
        for pending in await asyncio.to_thread(self.store.pending):
            self._queue.put_nowait((pending.receipt_id, None))
        self._tasks = [asyncio.create_task(self._processor(), name="alerts:processor")]
        # The watcher an earlier process may have left unstarted (it died between deferring
        # a notification and starting it, or it was a release that kept the storm loop in
        # memory); starting it twice is harmless.
        try:
            await self._watch_storm()
        except Exception:  # noqa: BLE001 - the next deferral or start tries again
            log.exception("the alert storm watcher could not be resumed")
        self._started.set()

    # ---- durable work (storm summaries) ------------------------------------------------

    async def _watch_storm(self) -> None:
        """Make sure a watcher will summarise the deferred notifications (one per storm:
        its id comes from the oldest of them)."""
        assert self.store is not None
        oldest = await asyncio.to_thread(self.store.oldest_deferred)
        if oldest is None or oldest == self._storm_watcher:
            return
        try:
            await self.engine.start_durable(durable_kinds.STORM,
                                            durable_kinds.storm_id(oldest), oldest)
            self._storm_watcher = oldest
        except Exception:  # noqa: BLE001 - the next deferral or start tries again
            log.exception("the alert storm watcher could not be started")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until every queued notification is processed (for tests and shutdown)."""
        while not self._queue.empty():
            await asyncio.sleep(0.01)

    async def _processor(self) -> None:
        while True:
            receipt, parsed = await self._queue.get()
            started = time.perf_counter()
            try:
                await self._process(receipt, parsed)
            except Exception:  # noqa: BLE001 - one bad alert must not stop the others
                log.exception("alert notification %s could not be processed", receipt)
                assert self.store is not None
                await asyncio.to_thread(self.store.settle, receipt, state="done",
                                        outcome="error", rule=None)
            metrics.ALERT_SECONDS.observe(time.perf_counter() - started)

    async def _process(self, receipt: str, notification: Notification | None) -> None:
        store = self.store
        assert store is not None
        if notification is None:  # stored by an earlier process, not yet processed
            stored = await asyncio.to_thread(store.get, receipt)
            if stored is None or stored.state != "received":
                return
            notification = Notification.model_validate(stored.body)
        rule = match_rule(self.settings.rules, notification.labels)

        async def settle(outcome: str, run_id: str | None = None, state: str = "done",
                         detail: str | None = None) -> None:
            await asyncio.to_thread(store.settle, receipt, state=state, outcome=outcome,
                                    rule=rule.name if rule else None, run_id=run_id,
                                    detail=detail)
            metrics.ALERT_NOTIFICATIONS.labels(outcome, rule.name if rule else "").inc()

        if rule is None:
            return await settle("no_rule")
        group = await asyncio.to_thread(store.group, notification.group_id)
        open_run = None
        if group is not None and group.run_id:
            if await self.engine.unfinished([group.run_id]):
                open_run = group.run_id

        if notification.status == "resolved":
            if group is None or group.run_id is None:
                return await settle("resolved_without_run")
            await asyncio.to_thread(store.touch_group, notification.group_id, resolved=True)
            with contextlib.suppress(RunNotFound):
                await self.engine.annotate(group.run_id,
                                           "the alert group resolved in Alertmanager")
            if open_run is not None and rule.cancel_on_resolved:
                await self.engine.cancel(group.run_id)
                return await settle("cancelled", group.run_id)
            return await settle("annotated", group.run_id)

        if open_run is not None:
            await asyncio.to_thread(store.touch_group, notification.group_id)
            metrics.ALERT_DEDUPLICATED.inc()
            return await settle("deduplicated", open_run)
        if rule.cooldown_seconds:
            last = await asyncio.to_thread(store.last_run_opened, rule.name)
            if last is not None and time.time() - last < rule.cooldown_seconds:
                return await settle("cooldown")
        if await self._rule_busy(rule) or await self._storming():
            await settle("deferred", state="deferred")
            return await self._watch_storm()
        run_id = f"run_alert_{receipt[:16]}"
        try:
            if rule.workflow is not None:
                inputs = {k: _render(v, notification) for k, v in rule.workflow_inputs.items()}
                await self.workflows.submit(rule.workflow, inputs, source="alertmanager",
                                            run_id=run_id)
            else:
                await self.engine.submit(render_goal(rule, notification), rule.profile,
                                         {"alert": notification.model_dump(by_alias=True)},
                                         source="alertmanager", run_id=run_id)
        except Exception as exc:  # noqa: BLE001 - recorded with the notification
            return await settle("error", detail=str(exc))
        # After the run is submitted: processed again after a crash, this notification finds
        # no open run, so it submits the same run again (a no-op).
        await asyncio.to_thread(store.open_group, notification.group_id, rule.name, run_id)
        metrics.ALERT_RUNS.labels(rule.name).inc()
        return await settle("run_created", run_id)

    async def _rule_busy(self, rule: AlertRule) -> bool:
        assert self.store is not None
        opened = await asyncio.to_thread(self.store.runs_of_rule, rule.name)
        return len(await self.engine.unfinished(opened)) >= rule.max_concurrent

    async def _storming(self) -> bool:
        assert self.store is not None
        return await asyncio.to_thread(self.store.storming,
                                       self.settings.max_new_runs_per_minute)
