"""Workflows as DBOS workflows: each tool call, child run and approval is a durable step.

The loop is deterministic given the recorded step outputs, so a replay after a crash takes
the same path: ready steps (all dependencies ended) whose condition holds run together;
approval gates run one at a time (a run has one pending approval). A failed step stops
the workflow, lets it continue, or jumps to another step, as its `on_failure` says.

This module imports DBOS: only the run engine imports it, after start-up.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from dbos import DBOS

from orchestrator_mcp.config.workflows import WorkflowDef, WorkflowStep, sandbox
from orchestrator_mcp.runs import planner, policy
from orchestrator_mcp.runs.models import (
    ApprovalDecision,
    PendingApproval,
    RunStatus,
    StepRecord,
    StopReason,
)

WORKFLOW_NAME = "orchestrator_workflow"
SKIPPED: dict[str, Any] = {"ok": False, "output": None, "data": None}
_env = sandbox()


def render(value: Any, scope: dict[str, Any]) -> Any:
    """Templates in strings, recursively. A string that is one `{{ expression }}` keeps the
    expression's type (so a port stays an integer)."""
    if isinstance(value, dict):
        return {k: render(v, scope) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, scope) for v in value]
    if not isinstance(value, str) or "{" not in value:
        return value
    stripped = value.strip()
    if stripped.startswith("{{") and stripped.endswith("}}") and stripped.count("{{") == 1:
        return _env.compile_expression(stripped[2:-2].strip())(**scope)
    return _env.from_string(value).render(**scope)


def condition_holds(expression: str, scope: dict[str, Any]) -> bool:
    return bool(_env.compile_expression(expression)(**scope))


def _workflow(name: str) -> WorkflowDef:
    workflows = planner.rt().workflows
    if name not in workflows:
        raise LookupError(f"workflow {name!r} is no longer defined")
    return workflows[name]


# ---- steps ----------------------------------------------------------------------------


@DBOS.step(name="workflow_start")
async def start_step(run_id: str) -> dict[str, Any]:
    store = planner.rt().store
    record = await asyncio.to_thread(store.get, run_id, with_steps=False)
    if record is None or record.workflow is None:
        raise LookupError(f"run {run_id} is not a workflow run")
    await asyncio.to_thread(store.update, run_id, status=RunStatus.RUNNING)
    planner.rt().notify(run_id)
    return {"workflow": record.workflow, "inputs": record.context.get("inputs", {}),
            "created_at": record.created_at}


@DBOS.step(name="workflow_tool_policy")
async def tool_policy_step(profile_name: str, tool: str) -> dict[str, Any]:
    runtime = planner.rt()
    await planner._catalog_ready()
    entry = runtime.gateway.catalog.get(tool)
    if entry is None:
        return {"allowed": False}
    profile = runtime.profiles[profile_name]
    return {"allowed": True, "approval": policy.approval_reason(entry, profile),
            "retry_safe": entry.retry_safe}


@DBOS.step(name="workflow_child_run")
async def child_step(run_id: str, step_id: str, task: str, profile: str) -> str:
    """Record the child run (queued by the workflow itself: DBOS does not start workflows
    from inside a step)."""
    engine = planner.rt().engine
    child = await engine.create(task, profile, {"workflow_run": run_id}, parent_id=run_id,
                                source="workflow", run_id=f"{run_id}-{step_id}")
    return child.id


@DBOS.step(name="workflow_note")
async def note_step(run_id: str, n: int, kind: str, summary: str,
                    detail: dict[str, Any]) -> None:
    step = StepRecord(n=n, kind=kind, at=time.time(), summary=summary[:500], detail=detail)
    await asyncio.to_thread(planner.rt().store.add_step, run_id, step)
    planner.rt().notify(run_id)


# ---- running one step -------------------------------------------------------------------


async def _approval(run_id: str, n: int, key: str, tool: str, arguments: dict[str, Any],
                    reason: str, timeout: float) -> ApprovalDecision | None:
    now = time.time()
    pending = PendingApproval(call_id=key, tool=tool, arguments=arguments, reason=reason,
                              requested_at=now, expires_at=now + timeout)
    await planner.pending_step(run_id, n, pending.model_dump())
    raw = await DBOS.recv_async(planner.approval_topic(key), timeout_seconds=timeout)
    await planner.decided_step(run_id, n + 1, tool, raw)
    return ApprovalDecision.model_validate(raw) if raw is not None else None


async def run_step(run_id: str, n: int, workflow: WorkflowDef, step: WorkflowStep,
                   scope: dict[str, Any]) -> dict[str, Any]:
    """Execute one step; returns {"ok": bool, "output": ..., ...} (JSON-serialisable)."""
    profile_name = step.profile or workflow.profile
    timeout = planner.rt().profiles[profile_name].approval.timeout_seconds
    if step.kind == "approval":
        message = str(render(step.message, scope))
        decision = await _approval(run_id, n, f"{n}:{step.id}", f"gate:{step.id}", {},
                                   message, timeout)
        approved = bool(decision and decision.approved)
        return {"ok": approved, "approved": approved, "output": message,
                "reason": decision.reason if decision else "approval expired"}
    if step.kind == "agent":
        task = str(render(step.task, scope))
        child_id = await child_step(run_id, step.id, task, profile_name)
        await planner.rt().engine.enqueue(child_id, child=True)
        result = await DBOS.get_result_async(child_id)
        ok = isinstance(result, dict) and result.get("status") == RunStatus.COMPLETED.value
        return {"ok": ok, "output": (result or {}).get("answer") or (result or {}).get("error"),
                "run_id": child_id}
    assert step.tool is not None
    arguments = render(step.arguments, scope)
    prepared = await tool_policy_step(workflow.profile, step.tool)
    if not prepared["allowed"]:
        return {"ok": False, "output": f"tool {step.tool!r} is not in the catalog"}
    key = f"{n}:{step.id}"
    # A human who approved a gate this step depends on has already said yes to it.
    gate_approved = any(scope["steps"].get(d, {}).get("approved") for d in step.depends_on)
    if prepared["approval"] and not gate_approved:
        decision = await _approval(run_id, n, key, step.tool, arguments,
                                   prepared["approval"], timeout)
        if decision is None or not decision.approved:
            why = "approval expired" if decision is None else f"rejected: {decision.reason}"
            return {"ok": False, "output": f"not executed ({why})"}
        arguments = decision.modified_arguments or arguments
    outcome = await planner.tool_step(run_id, n + 2, key, step.tool, arguments,
                                      prepared["retry_safe"])
    text = outcome["text"]
    body = text.split("\n", 1)[1].rsplit("\n</tool_result>", 1)[0] if "\n" in text else text
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, ValueError):
        data = None
    return {"ok": not outcome["is_error"], "output": body, "data": data}


# ---- the workflow ---------------------------------------------------------------------


@DBOS.workflow(name=WORKFLOW_NAME)
async def workflow_run(run_id: str) -> dict[str, Any]:
    spec = await start_step(run_id)
    workflow = _workflow(spec["workflow"])
    results: dict[str, dict[str, Any]] = {}
    state = {s.id: "pending" for s in workflow.steps}
    unblocked: set[str] = set()  # goto targets: run whatever their dependencies did
    n = 0
    failure: str | None = None

    def scope() -> dict[str, Any]:
        return {"inputs": spec["inputs"], "steps": {
            k: {**v, "status": state[k]} for k, v in results.items()}}

    while failure is None:
        ready = [s for s in workflow.steps if state[s.id] == "pending" and (
            s.id in unblocked
            or all(state[d] in ("completed", "skipped", "failed") for d in s.depends_on))]
        if not ready:
            break
        runnable = []
        for step in ready:
            if step.condition and not condition_holds(step.condition, scope()):
                state[step.id] = "skipped"
                results[step.id] = SKIPPED
                n += 3
                await note_step(run_id, n, "note", f"{step.id}: skipped (condition false)", {})
            else:
                runnable.append(step)
        gates = [s for s in runnable if s.kind == "approval"]
        batch = [s for s in runnable if s.kind != "approval"] or gates[:1]
        numbers = []
        for _ in batch:
            n += 3
            numbers.append(n)
        current = scope()
        outcomes = await asyncio.gather(*(run_step(run_id, number, workflow, step, current)
                                          for number, step in zip(numbers, batch, strict=True)))
        for number, step, outcome in zip(numbers, batch, outcomes, strict=True):
            results[step.id] = outcome
            state[step.id] = "completed" if outcome["ok"] else "failed"
            await note_step(run_id, number + 1, "note",
                            f"{step.id}: {state[step.id]}", {"output": outcome.get("output")})
            if outcome["ok"]:
                continue
            if step.on_failure == "stop":
                failure = f"step {step.id!r} failed: {str(outcome.get('output'))[:500]}"
            elif step.goto is not None:
                for other in workflow.steps:
                    if state[other.id] == "pending" and other.id != step.goto:
                        state[other.id] = "skipped"
                        results[other.id] = SKIPPED
                if state[step.goto] != "pending":
                    failure = f"step {step.id!r} failed and {step.goto!r} already ran"
                else:
                    unblocked.add(step.goto)

    outputs: dict[str, Any] = {}
    if failure is None:
        for key, template in workflow.outputs.items():
            try:
                outputs[key] = render(template, scope())
            except Exception as exc:  # noqa: BLE001 - a bad output must not lose the run
                outputs[key] = f"(could not render: {exc})"
    status = RunStatus.FAILED if failure else RunStatus.COMPLETED
    stop = StopReason.ERROR if failure else StopReason.ANSWERED
    answer = None if failure else json.dumps(outputs, default=str)
    await planner.finish_step(run_id, n + 3, status.value, stop.value, answer, failure,
                              {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0})
    return {"status": status.value, "answer": answer, "error": failure,
            "steps": {k: state[k] for k in state}}
