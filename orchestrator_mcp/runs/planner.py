"""The planner loop as a DBOS workflow: every LLM call and every tool call is a step.

After a crash DBOS replays the workflow: completed steps return their recorded output
instead of running again, so the loop rebuilds the same conversation and carries on from
the first step that has no record. Tool calls also go through our ledger
(`RunStore.begin_tool_call`), which tells a call that completed from one that was sent and
never answered ("in doubt"): only read-only/idempotent tools are sent again.

This module imports DBOS, so only the run engine imports it, after start-up.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from dbos import DBOS

from orchestrator_mcp.config import ProfileConfig
from orchestrator_mcp.gateway import CallTimeout, Gateway, ServerUnavailable, UnknownTool
from orchestrator_mcp.llm import Completion, LLMError, LLMProvider, Message, ToolCall, ToolSpec
from orchestrator_mcp.runs import policy, prompts
from orchestrator_mcp.runs.models import (
    ApprovalDecision,
    PendingApproval,
    RunStatus,
    StepRecord,
    StopReason,
    Usage,
)
from orchestrator_mcp.runs.store import RunStore
from orchestrator_mcp.telemetry import metrics, tracing
from orchestrator_mcp.telemetry.redaction import redact_text

WORKFLOW_NAME = "orchestrator_run"
MAX_DELEGATION_DEPTH = 3  # a delegated run may delegate, up to this many levels
DELEGATE_TOOL = prompts.DELEGATE_TOOL


def approval_topic(call_id: str) -> str:
    return f"approval:{call_id}"


@dataclass
class Runtime:
    """What steps need that cannot travel through DBOS: set once by the engine."""

    store: RunStore
    gateway: Gateway
    profiles: dict[str, ProfileConfig]
    provider_for: Any  # Callable[[ProfileConfig], LLMProvider]
    cost_of: Any  # Callable[[str, str, int, int], float | None]
    notify: Any  # Callable[[str], None]: the run's status changed (wakes waiters)
    workflows: dict[str, Any]  # name → WorkflowDef
    audit: Any  # AuditLog
    engine: Any  # RunEngine, for child runs


_runtime: Runtime | None = None


def install(runtime: Runtime) -> None:
    global _runtime
    _runtime = runtime


def rt() -> Runtime:
    if _runtime is None:
        raise RuntimeError("the run engine is not started")
    return _runtime


async def _store(fn: Any, *args: Any, **kwargs: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(fn, *args, **kwargs)


async def _record(run_id: str, n: int, kind: str, summary: str, **detail: Any) -> None:
    step = StepRecord(n=n, kind=kind, at=time.time(), summary=redact_text(summary, limit=500),
                      detail=detail)
    await _store(rt().store.add_step, run_id, step)
    rt().notify(run_id)


async def _catalog_ready() -> None:
    """Runs recovered at start-up must not see a catalog whose servers are still
    connecting: wait (bounded) until every server has had its first attempt."""
    gateway = rt().gateway
    await gateway.wait_settled(gateway.settings.connect_timeout)


def _count_llm(completion: Completion, cost: float | None, seconds: float) -> None:
    labels = (completion.provider, completion.model)
    metrics.LLM_TOKENS.labels(*labels, "input").inc(completion.usage.input_tokens)
    metrics.LLM_TOKENS.labels(*labels, "output").inc(completion.usage.output_tokens)
    if cost:
        metrics.LLM_COST.labels(*labels).inc(cost)
    metrics.STEP_SECONDS.labels("llm").observe(seconds)


# ---- steps ----------------------------------------------------------------------------


@DBOS.step(name="run_start")
async def start_step(run_id: str) -> dict[str, Any]:
    record = await _store(rt().store.get, run_id, with_steps=False)
    if record is None:
        raise LookupError(f"run {run_id} is not in the runs table")
    await _store(rt().store.update, run_id, status=RunStatus.RUNNING)
    rt().notify(run_id)
    return {"goal": record.goal, "profile": record.profile, "context": record.context,
            "created_at": record.created_at}


@DBOS.step(name="llm_call")
async def llm_step(
    run_id: str, n: int, profile_name: str, messages: list[dict[str, Any]], deadline: float,
    usage: dict[str, Any],
) -> dict[str, Any]:
    """One model call over the profile's current catalog, and what the policy says of each
    call it asks for. The budget clock and the catalog are read here, so a replay sees
    the same decisions."""
    if time.time() > deadline:
        return {"stop": StopReason.MAX_SECONDS.value}
    runtime = rt()
    profile = runtime.profiles[profile_name]
    await _catalog_ready()
    tools = policy.profile_tools(runtime.gateway.catalog, profile)
    specs = [
        ToolSpec(name=name, description=entry.tool.description or name,
                 input_schema=entry.tool.input_schema)
        for name, entry in sorted(tools.items())
    ]
    if profile.delegates:
        specs.append(prompts.delegate_spec(profile.delegates, runtime.profiles))
    provider: LLMProvider = runtime.provider_for(profile)
    started = time.perf_counter()
    try:
        with tracing.llm_span(run_id, provider.name, provider.model, profile=profile_name,
                              step=n) as span:
            completion: Completion = await provider.complete(
                [Message.model_validate(m) for m in messages], specs)
            span.completion(completion)
    except LLMError as exc:
        await _record(run_id, n, "llm", f"model call failed: {exc}")
        return {"error": str(exc)}
    cost = runtime.cost_of(completion.provider, completion.model,
                           completion.usage.input_tokens, completion.usage.output_tokens)
    _count_llm(completion, cost, time.perf_counter() - started)
    total = Usage.model_validate(usage).add(completion.usage.input_tokens,
                                            completion.usage.output_tokens, cost)
    decisions = []
    for call in completion.tool_calls:
        entry = tools.get(call.name)
        if call.name == prompts.DELEGATE_TOOL and profile.delegates:
            decisions.append({"allowed": True, "approval": None, "delegate": True})
            continue
        decisions.append({"allowed": False} if entry is None else {
            "allowed": True, "approval": policy.approval_reason(entry, profile),
            "retry_safe": entry.retry_safe})
    calls = ", ".join(c.name for c in completion.tool_calls)
    step = StepRecord(n=n, kind="llm", at=time.time(),
                      summary=f"model asked for {calls}" if calls else "model answered",
                      detail={"text": completion.text, "model": completion.model,
                              "provider": completion.provider, "cost_usd": cost,
                              "tool_calls": [c.model_dump() for c in completion.tool_calls],
                              "usage": completion.usage.model_dump()})
    await _store(runtime.store.add_step, run_id, step, usage=total)
    runtime.notify(run_id)
    return {"completion": completion.model_dump(), "usage": total.model_dump(),
            "decisions": decisions}


@DBOS.step(name="await_approval_mark")
async def pending_step(run_id: str, n: int, pending: dict[str, Any]) -> None:
    approval = PendingApproval.model_validate(pending)
    await _store(rt().store.update, run_id, status=RunStatus.AWAITING_APPROVAL, pending=approval)
    await _record(run_id, n, "approval", f"waiting for approval of {approval.tool}: "
                  f"{approval.reason}", pending=pending)
    rt().notify(run_id)


@DBOS.step(name="approval_outcome")
async def decided_step(run_id: str, n: int, tool: str, decision: dict[str, Any] | None) -> None:
    outcome = "expired" if decision is None else (
        "approved" if decision["approved"] else "rejected")
    metrics.APPROVALS_DECIDED.labels(outcome).inc()
    await _store(rt().audit.record, kind="approval", run_id=run_id, tool=tool,
                 caller=(decision or {}).get("decided_by", "expiry"), outcome=outcome,
                 arguments=(decision or {}).get("modified_arguments"))
    if decision is None:
        summary = f"approval of {tool} expired; not executed"
    else:
        verdict = "approved" if decision["approved"] else "rejected"
        summary = f"{tool} {verdict} by {decision['decided_by']}"
        if decision.get("reason"):
            summary += f": {decision['reason']}"
    await _store(rt().store.update, run_id, status=RunStatus.RUNNING, pending=None)
    await _record(run_id, n, "approval", summary, decision=decision)
    rt().notify(run_id)


@DBOS.step(name="tool_call")
async def tool_step(
    run_id: str, n: int, call_id: str, tool: str, arguments: dict[str, Any], retry_safe: bool
) -> dict[str, Any]:
    store = rt().store
    state, kept = await _store(store.begin_tool_call, run_id, call_id, tool)
    if state == "done":
        return kept
    if state == "started" and not retry_safe:
        outcome = {
            "text": prompts.not_executed(
                tool, "this call was sent before the orchestrator restarted and no result "
                "was recorded, so it is unknown whether it took effect. It was not sent "
                "again because the tool is not read-only or idempotent: check its effect "
                "with a read-only tool before deciding anything."),
            "is_error": True, "in_doubt": True,
        }
        step = StepRecord(n=n, kind="tool", at=time.time(),
                          summary=f"{tool}: in doubt after a restart, not repeated",
                          detail={"tool": tool, "arguments": arguments, "in_doubt": True})
        await _store(store.finish_tool_call, run_id, call_id, outcome, step)
        return outcome
    started = time.perf_counter()
    await _catalog_ready()
    entry = rt().gateway.catalog.get(tool)
    try:
        with tracing.tool_span(run_id, tool, call_id, entry.server if entry else None,
                               step=n) as span:
            result = await rt().gateway.call_tool(tool, arguments)
            text, is_error = prompts.result_text(result), bool(result.is_error)
            if is_error:
                span.failed("tool_error", text)
    except (UnknownTool, ServerUnavailable, CallTimeout) as exc:
        text, is_error = str(exc), True
    except Exception as exc:  # noqa: BLE001 - a failing server must not fail the run
        text, is_error = f"{type(exc).__name__}: {exc}", True
    outcome = {"text": prompts.fence(tool, text, is_error=is_error), "is_error": is_error}
    seconds = time.perf_counter() - started
    metrics.STEP_SECONDS.labels("tool").observe(seconds)
    await _store(rt().audit.record, kind="tool_call", run_id=run_id, tool=tool,
                 caller=f"run:{run_id}", outcome="error" if is_error else "ok",
                 arguments=arguments, seconds=seconds)
    step = StepRecord(n=n, kind="tool", at=time.time(),
                      summary=f"{tool}: {'error' if is_error else 'ok'}",
                      detail={"tool": tool, "arguments": arguments, "is_error": is_error,
                              "result": redact_text(text, limit=4000),
                              "seconds": round(time.perf_counter() - started, 4),
                              "repeated_after_restart": state == "started"})
    await _store(store.finish_tool_call, run_id, call_id, outcome, step)
    rt().notify(run_id)
    return outcome


@DBOS.step(name="delegate_child_run")
async def delegate_step(run_id: str, n: int, profile_name: str, arguments: dict[str, Any]
                        ) -> dict[str, Any]:
    """Check a delegation and record the child run (queued by the workflow itself: DBOS
    starts workflows only from workflow code, which also makes the child its child)."""
    runtime = rt()
    allowed = runtime.profiles[profile_name].delegates
    agent, task = arguments.get("agent"), arguments.get("task")
    if agent not in allowed:
        return {"error": f"agent {agent!r} is not one you may delegate to "
                         f"({', '.join(allowed)})"}
    if not isinstance(task, str) or not task.strip():
        return {"error": "task must be a non-empty string saying what the agent should do"}
    depth = len(re.findall(r"-d\d+(?=-|$)", run_id))
    if depth >= MAX_DELEGATION_DEPTH:
        return {"error": f"delegation is limited to {MAX_DELEGATION_DEPTH} levels; answer "
                         "with what you know"}
    child = await runtime.engine.create(task, agent, {"delegated_by": run_id},
                                        parent_id=run_id, source="delegation",
                                        run_id=f"{run_id}-d{n}")
    await _record(run_id, n, "tool", f"delegated to {agent}: child run {child.id}",
                  tool=DELEGATE_TOOL, child_run=child.id, agent=agent)
    return {"child_id": child.id}


async def _delegate(run_id: str, n: int, profile_name: str, arguments: dict[str, Any]) -> str:
    started = await delegate_step(run_id, n, profile_name, arguments)
    if "error" in started:
        return prompts.not_executed(DELEGATE_TOOL, started["error"])
    await rt().engine.enqueue(started["child_id"], child=True)
    result = await DBOS.get_result_async(started["child_id"]) or {}
    return prompts.delegation_result(started["child_id"], result)


@DBOS.step(name="run_finish")
async def finish_step(
    run_id: str, n: int, status: str, stop: str, answer: str | None, error: str | None,
    usage: dict[str, Any],
) -> None:
    await _store(rt().store.update, run_id, status=RunStatus(status), stop_reason=StopReason(stop),
                 answer=answer, error=error, usage=Usage.model_validate(usage))
    record = await _store(rt().store.get, run_id, with_steps=False)
    if record is not None:
        tracing.run_finished(record)
        metrics.RUNS.labels(record.profile, record.status.value).inc()
        metrics.RUN_SECONDS.labels(record.profile).observe(time.time() - record.created_at)
    await _record(run_id, n, "note", f"run {status}: {stop}", answer=answer, error=error)
    rt().notify(run_id)


# ---- the workflow ---------------------------------------------------------------------


def _over_budget(profile: ProfileConfig, usage: Usage) -> StopReason | None:
    budgets = profile.budgets
    if budgets.max_tokens is not None and usage.tokens >= budgets.max_tokens:
        return StopReason.MAX_TOKENS
    if (budgets.max_cost_usd is not None and usage.cost_usd is not None
            and usage.cost_usd >= budgets.max_cost_usd):
        return StopReason.MAX_COST
    return None


@DBOS.workflow(name=WORKFLOW_NAME)
async def run_workflow(run_id: str) -> dict[str, Any]:
    spec = await start_step(run_id)
    profile = rt().profiles[spec["profile"]]
    deadline = spec["created_at"] + profile.budgets.max_seconds
    messages: list[dict[str, Any]] = [
        Message(role="system", content=prompts.system_prompt(profile.role)).model_dump(),
        Message(role="user", content=prompts.goal_message(spec["goal"], spec["context"]))
        .model_dump(),
    ]
    usage = Usage()
    n = 0

    async def finish(status: RunStatus, stop: StopReason, answer: str | None = None,
                     error: str | None = None) -> dict[str, Any]:
        await finish_step(run_id, n + 1, status.value, stop.value, answer, error,
                          usage.model_dump())
        return {"status": status.value, "stop_reason": stop.value, "answer": answer,
                "error": error}

    for _ in range(profile.budgets.max_steps):
        n += 1
        outcome = await llm_step(run_id, n, spec["profile"], messages, deadline,
                                 usage.model_dump())
        if "stop" in outcome:
            return await finish(RunStatus.FAILED, StopReason(outcome["stop"]),
                                error="the run's time budget (max_seconds) ran out")
        if "error" in outcome:
            return await finish(RunStatus.FAILED, StopReason.LLM_ERROR, error=outcome["error"])
        completion = Completion.model_validate(outcome["completion"])
        usage = Usage.model_validate(outcome["usage"])
        if not completion.tool_calls:
            return await finish(RunStatus.COMPLETED, StopReason.ANSWERED, answer=completion.text)
        messages.append(Message(role="assistant", content=completion.text,
                                tool_calls=completion.tool_calls).model_dump())
        for call, decision in zip(completion.tool_calls, outcome["decisions"], strict=True):
            n += 1
            messages.append(await _one_call(run_id, n, spec["profile"], call, decision))
            n += 2  # room for the approval records of this call
        stop = _over_budget(profile, usage)
        if stop is not None:
            return await finish(RunStatus.FAILED, stop,
                                error=f"the run's {stop.value.removeprefix('budget_')} "
                                "budget ran out")
    return await finish(RunStatus.FAILED, StopReason.MAX_STEPS,
                        error=f"the model did not answer within {profile.budgets.max_steps} "
                        "steps (max_steps)")


async def _one_call(run_id: str, n: int, profile_name: str, call: ToolCall,
                    prepared: dict[str, Any]) -> dict[str, Any]:
    def reply(text: str) -> dict[str, Any]:
        return Message(role="tool", content=text, tool_call_id=call.id,
                       name=call.name).model_dump()

    if not prepared["allowed"]:
        await _record(run_id, n, "tool", f"{call.name}: not in this profile's catalog")
        return reply(prompts.not_executed(
            call.name, "no such tool in your catalog; use only the tools you were given"))
    arguments = call.arguments
    if prepared.get("delegate"):
        return reply(await _delegate(run_id, n, profile_name, arguments))
    key = f"{n}:{call.id}"  # models may reuse call ids; the position in the run is unique
    if prepared["approval"]:
        now = time.time()
        timeout = rt().profiles[profile_name].approval.timeout_seconds
        pending = PendingApproval(call_id=key, tool=call.name, arguments=arguments,
                                  reason=prepared["approval"], requested_at=now,
                                  expires_at=now + timeout)
        await pending_step(run_id, n, pending.model_dump())
        raw = await DBOS.recv_async(approval_topic(key), timeout_seconds=timeout)
        await decided_step(run_id, n + 1, call.name, raw)
        if raw is None:
            return reply(prompts.not_executed(
                call.name, "approval expired before a human decided"))
        decision = ApprovalDecision.model_validate(raw)
        if not decision.approved:
            why = f" Reason given: {decision.reason}" if decision.reason else ""
            return reply(prompts.not_executed(
                call.name, f"a human rejected this call.{why}"))
        if decision.modified_arguments is not None:
            arguments = decision.modified_arguments
    outcome = await tool_step(run_id, n + 2, key, call.name, arguments,
                              prepared["retry_safe"])
    return reply(outcome["text"])
