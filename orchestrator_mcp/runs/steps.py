"""The step layer: the durable steps every kind of run is made of.

A run (the planner's loop, a YAML workflow) is a DBOS workflow; what it does to the world
goes through these steps, so a replay after a crash returns recorded outputs instead of
acting twice. Tool calls also go through our ledger (`RunStore.begin_tool_call`), which
tells a call that completed from one that was sent and never answered ("in doubt"): only
read-only/idempotent tools are sent again.

`RunSteps` is a DBOS configured instance: DBOS records its name with every workflow and
finds the same instance again on recovery, so its ports are passed in, not looked up.
DBOS's registry is per process, and so is the one executing engine that builds this.

This module imports DBOS, so only the run engine imports it, after start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from dbos import DBOS, DBOSConfiguredInstance
from pydantic import BaseModel

from orchestrator_mcp.config import ProfileConfig
from orchestrator_mcp.config.profiles import ApprovalRules
from orchestrator_mcp.errors import UserError
from orchestrator_mcp.gateway import CatalogTool
from orchestrator_mcp.llm import LLMError
from orchestrator_mcp.runs import approvals, memory_calls, prompts
from orchestrator_mcp.runs.kinds import INSTANCE
from orchestrator_mcp.runs.models import (
    ApprovalDecision,
    PendingApproval,
    RunStatus,
    StepRecord,
    StopReason,
    Usage,
)
from orchestrator_mcp.runs.policy import profile_tools
from orchestrator_mcp.runs.ports import RunPorts
from orchestrator_mcp.telemetry import metrics, tracing
from orchestrator_mcp.telemetry.redaction import redact_text

MAX_DATA_CHARS = 1_000_000  # tool output longer than this is not parsed as JSON
T = TypeVar("T")


class ToolOutcome(BaseModel):
    """What a tool call produced: `output` (its text, cut to what a model may read) and
    `data` (its structured content, or its output parsed as JSON) for workflows; `text`
    for the model, fenced as untrusted."""

    tool: str
    output: str
    data: Any = None
    is_error: bool = False
    in_doubt: bool = False

    @property
    def text(self) -> str:
        if self.in_doubt:
            return prompts.not_executed(self.tool, self.output)
        return prompts.fence(self.tool, self.output, is_error=self.is_error)


class ToolPolicy(BaseModel):
    """Whether a run may call a tool, and if it must wait for a human first."""

    allowed: bool
    approval: str | None = None
    retry_safe: bool = False

    @classmethod
    def of(cls, entry: CatalogTool | None, profile: ProfileConfig) -> ToolPolicy:
        if entry is None:
            return cls(allowed=False)
        return cls(allowed=True, approval=approvals.reason(entry, profile),
                   retry_safe=entry.retry_safe)


def _data(result: Any, text: str) -> Any:
    """The output as JSON when it is JSON (what workflow templates read), else the
    result's structured content."""
    if text.lstrip()[:1] in ("{", "[") and len(text) <= MAX_DATA_CHARS:
        try:
            return json.loads(text)
        except (ValueError, RecursionError):  # not JSON, or nested too deeply to be data
            pass
    return None if result is None else result.structured_content


@DBOS.dbos_class("orchestrator_run_steps")
class RunSteps(DBOSConfiguredInstance):
    def __init__(self, ports: RunPorts) -> None:
        self.ports = ports
        super().__init__(INSTANCE)

    # ---- helpers for steps and workflows (not steps themselves) ----------------------

    def profile(self, name: str) -> ProfileConfig:
        return self.ports.profiles[name]

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking store call, off the event loop."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def update(self, run_id: str, **fields: Any) -> None:
        """Change the run (`RunStore.update`) and wake whoever waits for it."""
        await self.db(self.ports.store.update, run_id, **fields)
        self.ports.notify(run_id, status="status" in fields)

    async def record(self, run_id: str, n: int, kind: str, summary: str, **detail: Any
                     ) -> None:
        """Write (or, on replay, overwrite) history entry `n` and wake the run's waiters."""
        step = StepRecord(n=n, kind=kind, at=time.time(),
                          summary=redact_text(summary, limit=500), detail=detail)
        await self.db(self.ports.store.add_step, run_id, step)
        self.ports.notify(run_id)

    @contextlib.asynccontextmanager
    async def admitted(self, run_id: str) -> AsyncIterator[None]:
        """Workflow code around a run's whole execution: hold one of this process's run
        slots (`runs.worker_concurrency`) meanwhile. A child run (a delegation, a workflow's
        agent step) takes none: its parent holds one and waits for it, so children can
        never be starved by their parents. Not a step: a replayed run waits again."""
        record = await self.db(self.ports.store.get, run_id, with_steps=False)
        async with self.ports.children.slot(
                child=record is not None and record.parent_id is not None):
            yield

    async def catalog_ready(self) -> None:
        """Runs recovered at start-up must not see a catalog whose servers are still
        connecting: wait (bounded) until every server has had its first attempt."""
        await self.ports.tools.wait_settled(self.ports.connect_timeout)

    async def profile_tools(self, profile: ProfileConfig) -> dict[str, CatalogTool]:
        await self.catalog_ready()
        return profile_tools(self.ports.tools.catalog, profile)

    async def run_child(self, run_id: str, child_id: str, task: str, profile: str, *,
                        source: str, context: dict[str, Any]) -> dict[str, Any]:
        """Start a child run and wait for its result (workflow code: DBOS starts workflows
        only from workflows, which also makes the child its child)."""
        created = await self.create_child(run_id, child_id, task, profile, source, context)
        if "error" in created:
            return {"status": RunStatus.FAILED.value, "error": created["error"]}
        await self.ports.children.enqueue(child_id, child=True)
        return await DBOS.get_result_async(child_id) or {}

    async def await_approval(self, run_id: str, n: int, call_id: str, tool: str,
                             arguments: dict[str, Any], why: str, rules: ApprovalRules
                             ) -> ApprovalDecision | None:
        """The approval sequence (workflow code): mark the run waiting (history entry
        `n`), wait for decisions until one decides or it expires — with four eyes
        (`rules.approvers` > 1) each approval but the last is noted and waited past —,
        record what happened (entry `n + 1`). None: it expired."""
        asked = approvals.pending(call_id, tool, arguments, why, rules, owner=None)
        waiting = PendingApproval.model_validate(
            await self.mark_pending(run_id, n, asked.model_dump()))
        while True:
            # Recorded messages come back as they were on replay, whatever the timeout.
            remaining = max(waiting.expires_at - time.time(), 0.001)
            raw = await DBOS.recv_async(approvals.topic(call_id), timeout_seconds=remaining)
            decision = None if raw is None else ApprovalDecision.model_validate(raw)
            if decision is None or approvals.still_needed(waiting, decision) == 0:
                await self.record_decision(run_id, n + 1, tool, raw, waiting.approved_by)
                return decision
            waiting = PendingApproval.model_validate(
                await self.record_vote(run_id, tool, waiting.model_dump(), raw))

    # ---- steps --------------------------------------------------------------------------

    @DBOS.step(name="await_approval_mark")
    async def mark_pending(self, run_id: str, n: int, pending: dict[str, Any]
                           ) -> dict[str, Any]:
        """Mark the run waiting; the pending approval as kept (with the run's owner)."""
        record = await self.db(self.ports.store.get, run_id, with_steps=False)
        waiting = PendingApproval.model_validate(pending).model_copy(
            update={"owner": record.owner if record is not None else None})
        await self.update(run_id, status=RunStatus.AWAITING_APPROVAL, pending=waiting)
        needs = (f" ({waiting.approvers} approvers)" if waiting.approvers > 1 else "")
        await self.record(run_id, n, "approval", f"waiting for approval of {waiting.tool}"
                          f"{needs}: {waiting.reason}", pending=waiting.model_dump())
        return waiting.model_dump()

    @DBOS.step(name="approval_vote")
    async def record_vote(self, run_id: str, tool: str, pending: dict[str, Any],
                          raw: dict[str, Any]) -> dict[str, Any]:
        """One approval of several (four eyes): kept on the pending approval, noted in the
        history and the audit log; the call waits on."""
        waiting = PendingApproval.model_validate(pending)
        decision = ApprovalDecision.model_validate(raw)
        left = approvals.still_needed(waiting, decision)
        if decision.decided_by not in waiting.approved_by and left < waiting.approvers - len(
                waiting.approved_by):
            waiting = waiting.model_copy(update={
                "approved_by": [*waiting.approved_by, decision.decided_by]})
            await self.db(self.ports.audit.record, kind="approval", run_id=run_id, tool=tool,
                          caller=decision.decided_by,
                          outcome=f"approved {len(waiting.approved_by)} of {waiting.approvers}")
            await self.update(run_id, pending=waiting)
            note = StepRecord(n=0, kind="approval", at=time.time(),
                              summary=approvals.partial_summary(tool, decision, left),
                              detail={"decision": raw})
            await self.db(self.ports.store.add_note, run_id, note)
            self.ports.notify(run_id)
        return waiting.model_dump()

    @DBOS.step(name="approval_outcome")
    async def record_decision(self, run_id: str, n: int, tool: str,
                              raw: dict[str, Any] | None, approved_before: list[str]) -> None:
        decision = None if raw is None else ApprovalDecision.model_validate(raw)
        outcome = approvals.outcome(decision)
        metrics.APPROVALS_DECIDED.labels(outcome).inc()
        await self.db(self.ports.audit.record, kind="approval", run_id=run_id, tool=tool,
                      caller=decision.decided_by if decision else "expiry", outcome=outcome,
                      arguments=decision.modified_arguments if decision else None)
        await self.update(run_id, status=RunStatus.RUNNING, pending=None)
        approvers = [*approved_before, decision.decided_by] if decision else []
        await self.record(run_id, n, "approval",
                          approvals.summary(tool, decision, approvers), decision=raw,
                          approved_by=approvers)


    @DBOS.step(name="run_start")
    async def start(self, run_id: str) -> dict[str, Any]:
        record = await self.db(self.ports.store.get, run_id, with_steps=False)
        if record is None:
            raise LookupError(f"run {run_id} is not in the runs table")
        await self.update(run_id, status=RunStatus.RUNNING)
        return {"goal": record.goal, "profile": record.profile, "context": record.context,
                "workflow": record.workflow, "created_at": record.created_at}

    @DBOS.step(name="tool_policy")
    async def tool_policy(self, profile_name: str, tool: str) -> dict[str, Any]:
        await self.catalog_ready()
        return ToolPolicy.of(self.ports.tools.catalog.get(tool),
                             self.profile(profile_name)).model_dump()

    @DBOS.step(name="tool_call")
    async def tool_call(self, run_id: str, n: int, call_id: str, tool: str,
                        arguments: dict[str, Any], retry_safe: bool) -> dict[str, Any]:
        """Call a tool once, as far as anyone can tell: a ToolOutcome, as a dict."""
        store = self.ports.store
        state, kept = await self.db(store.begin_tool_call, run_id, call_id, tool)
        if state == "done":
            return kept
        if state == "started" and not retry_safe:
            outcome = ToolOutcome(
                tool=tool, is_error=True, in_doubt=True,
                output="this call was sent before the orchestrator restarted and no result "
                "was recorded, so it is unknown whether it took effect. It was not sent "
                "again because the tool is not read-only or idempotent: check its effect "
                "with a read-only tool before deciding anything.")
            step = StepRecord(n=n, kind="tool", at=time.time(),
                              summary=f"{tool}: in doubt after a restart, not repeated",
                              detail={"tool": tool, "arguments": arguments, "in_doubt": True})
            await self.db(store.finish_tool_call, run_id, call_id, outcome.model_dump(), step)
            return outcome.model_dump()
        started = time.perf_counter()
        await self.catalog_ready()
        entry = self.ports.tools.catalog.get(tool)
        result = None
        try:
            with tracing.tool_span(run_id, tool, call_id, entry.server if entry else None,
                                   step=n) as span:
                result = await self.ports.tools.call_tool(tool, arguments)
                text, is_error = prompts.result_text(result), bool(result.is_error)
                if is_error:
                    span.failed("tool_error", text)
        except UserError as exc:  # unknown tool, server down, timeout, refused
            text, is_error = str(exc), True
        except Exception as exc:  # noqa: BLE001 - a failing server must not fail the run
            text, is_error = f"{type(exc).__name__}: {exc}", True
        outcome = ToolOutcome(tool=tool, output=prompts.cut(text), is_error=is_error,
                              data=None if is_error else _data(result, text))
        seconds = time.perf_counter() - started
        metrics.STEP_SECONDS.labels("tool").observe(seconds)
        audit = self.ports.audit.row(kind="tool_call", run_id=run_id, tool=tool,
                                     caller=f"run:{run_id}",
                                     outcome="error" if is_error else "ok",
                                     arguments=arguments, seconds=seconds)
        step = StepRecord(n=n, kind="tool", at=time.time(),
                          summary=f"{tool}: {'error' if is_error else 'ok'}",
                          detail={"tool": tool, "arguments": arguments, "is_error": is_error,
                                  "result": redact_text(text, limit=4000),
                                  "seconds": round(time.perf_counter() - started, 4),
                                  "repeated_after_restart": state == "started"})
        await self.db(store.finish_tool_call, run_id, call_id, outcome.model_dump(), step,
                      audit)
        self.ports.notify(run_id)
        return outcome.model_dump()

    @DBOS.step(name="memory_notes")
    async def memory_notes(self, run_id: str, n: int, profile_name: str, goal: str
                           ) -> str | None:
        """The memories most relevant to the goal, as the message that gives them to the
        model at the start of a run (None: none)."""
        text, ids, error = await memory_calls.notes(
            self.ports.memory, self.profile(profile_name), profile_name, goal)
        if error is not None:
            await self.record(run_id, n, "note", f"memory could not be recalled: {error}")
        else:
            await self.record(run_id, n, "note", f"recalled {len(ids)} memories for the goal",
                              memory_ids=ids)
        return text

    @DBOS.step(name="memory_call")
    async def memory_call(self, run_id: str, n: int, profile_name: str, tool: str,
                          arguments: dict[str, Any], approved_by: str | None) -> str:
        """memory_recall or memory_remember (already approved when it had to be): what the
        model reads back. Every remember is audited, written or refused."""
        started = time.perf_counter()
        outcome = await memory_calls.call(self.ports.memory, self.profile(profile_name),
                                          profile_name, tool, arguments, run_id=run_id,
                                          approved_by=approved_by)
        if tool == prompts.REMEMBER_TOOL:
            await self.db(self.ports.audit.record, kind="memory", run_id=run_id, tool=tool,
                          caller=f"run:{run_id}",
                          outcome="refused" if outcome.is_error else "written",
                          arguments=arguments, seconds=time.perf_counter() - started)
        await self.record(run_id, n, "tool", outcome.summary, tool=tool, arguments=arguments,
                          is_error=outcome.is_error, **outcome.detail)
        return outcome.text

    @DBOS.step(name="child_run")
    async def create_child(self, run_id: str, child_id: str, task: str, profile: str,
                           source: str, context: dict[str, Any]) -> dict[str, str]:
        """Record the child run; {"error": why} when it cannot be (its profile has no
        model configured, say), for the parent to carry on with."""
        try:
            await self.ports.children.create(task, profile, context, parent_id=run_id,
                                             source=source, run_id=child_id)
        except (UserError, LLMError) as exc:
            return {"error": f"the child run could not start: {exc}"}
        return {"child_id": child_id}

    @DBOS.step(name="note")
    async def note(self, run_id: str, n: int, kind: str, summary: str,
                   detail: dict[str, Any]) -> None:
        await self.record(run_id, n, kind, summary, **detail)

    @DBOS.step(name="run_finish")
    async def finish(self, run_id: str, n: int, status: str, stop: str, answer: str | None,
                     error: str | None, usage: dict[str, Any]) -> None:
        store = self.ports.store
        # The note first: a run stream ends at the run's `end`.
        await self.record(run_id, n, "note", f"run {status}: {stop}", answer=answer,
                          error=error)
        # The end itself: whoever waits returns now, not a second later.
        await self.update(run_id, status=RunStatus(status), stop_reason=StopReason(stop),
                          answer=answer, error=error, usage=Usage.model_validate(usage))
        record = await self.db(store.get, run_id, with_steps=False)
        if record is not None:
            tracing.run_finished(record)
            metrics.RUNS.labels(record.profile, record.status.value).inc()
            metrics.RUN_SECONDS.labels(record.profile).observe(time.time() - record.created_at)
