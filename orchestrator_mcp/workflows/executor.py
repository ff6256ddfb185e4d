"""Workflows as DBOS workflows: each tool call, child run and approval is a durable step.

The loop is deterministic given the recorded step outputs, so a replay after a crash takes
the same path: ready steps (all dependencies ended), taken in topological order, whose
condition holds run together; approval gates run one at a time (a run has one pending
approval). A failed step stops the workflow, lets it continue, or jumps to another step,
as its `on_failure` says. Tool calls, approvals and child runs are the step layer's
(`runs.steps`), the same the planner uses.

This module imports DBOS: only the run engine imports it (through the run kind
`workflows.submit.RUN_KIND`), after start-up.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from dbos import DBOS, DBOSConfiguredInstance

from orchestrator_mcp.runs.models import RunStatus, StopReason
from orchestrator_mcp.runs.steps import INSTANCE, RunSteps, ToolOutcome, ToolPolicy
from orchestrator_mcp.workflows.definitions import (
    WorkflowDef,
    WorkflowStep,
    sandbox,
    topological_order,
)

WORKFLOW_NAME = "orchestrator_workflow"
CLASS_NAME = "orchestrator_workflow_executor"
SKIPPED: dict[str, Any] = {"ok": False, "output": None, "data": None}
ENDED = ("completed", "skipped", "failed")
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


@DBOS.dbos_class(CLASS_NAME)
class WorkflowExecutor(DBOSConfiguredInstance):
    def __init__(self, steps: RunSteps, definitions: Mapping[str, WorkflowDef]) -> None:
        self.steps = steps
        self.definitions = definitions
        super().__init__(INSTANCE)

    def _definition(self, name: str) -> WorkflowDef:
        if name not in self.definitions:
            raise LookupError(f"workflow {name!r} is no longer defined")
        return self.definitions[name]

    async def run_step(self, run_id: str, n: int, workflow: WorkflowDef, step: WorkflowStep,
                       scope: dict[str, Any]) -> dict[str, Any]:
        """Execute one step; returns {"ok": bool, "output": ..., ...} (JSON-serialisable)."""
        profile_name = step.profile or workflow.profile
        rules = self.steps.profile(profile_name).approval
        if step.kind == "approval":
            message = str(render(step.message, scope))
            decision = await self.steps.await_approval(run_id, n, f"{n}:{step.id}",
                                                       f"gate:{step.id}", {}, message, rules)
            approved = bool(decision and decision.approved)
            return {"ok": approved, "approved": approved, "output": message,
                    "reason": decision.reason if decision else "approval expired"}
        if step.kind == "agent":
            task = str(render(step.task, scope))
            child_id = f"{run_id}-{step.id}"
            result = await self.steps.run_child(run_id, child_id, task, profile_name,
                                                source="workflow",
                                                context={"workflow_run": run_id})
            ok = result.get("status") == RunStatus.COMPLETED.value
            return {"ok": ok, "output": result.get("answer") or result.get("error"),
                    "run_id": child_id}
        assert step.tool is not None
        arguments = render(step.arguments, scope)
        policy = ToolPolicy.model_validate(
            await self.steps.tool_policy(workflow.profile, step.tool))
        if not policy.allowed:
            return {"ok": False, "output": f"tool {step.tool!r} is not in the catalog"}
        key = f"{n}:{step.id}"
        # A human who approved a gate this step depends on has already said yes to it.
        gate_approved = any(scope["steps"].get(d, {}).get("approved") for d in step.depends_on)
        if policy.approval and not gate_approved:
            decision = await self.steps.await_approval(run_id, n, key, step.tool, arguments,
                                                       policy.approval, rules)
            if decision is None or not decision.approved:
                why = "approval expired" if decision is None else f"rejected: {decision.reason}"
                return {"ok": False, "output": f"not executed ({why})"}
            arguments = decision.modified_arguments or arguments
        outcome = ToolOutcome.model_validate(await self.steps.tool_call(
            run_id, n + 2, key, step.tool, arguments, policy.retry_safe))
        return {"ok": not outcome.is_error, "output": outcome.output, "data": outcome.data}

    @DBOS.workflow(name=WORKFLOW_NAME)
    async def run(self, run_id: str) -> dict[str, Any]:
        async with self.steps.admitted(run_id):
            return await self._execute(run_id)

    async def _execute(self, run_id: str) -> dict[str, Any]:
        spec = await self.steps.start(run_id)
        if spec["workflow"] is None:
            raise LookupError(f"run {run_id} is not a workflow run")
        workflow = self._definition(spec["workflow"])
        inputs = spec["context"].get("inputs", {})
        by_id = {s.id: s for s in workflow.steps}
        order = [by_id[i] for i in topological_order(workflow.steps)]
        results: dict[str, dict[str, Any]] = {}
        state = {s.id: "pending" for s in workflow.steps}
        unblocked: set[str] = set()  # goto targets: run whatever their dependencies did
        n = 0
        failure: str | None = None

        def scope() -> dict[str, Any]:
            return {"inputs": inputs, "steps": {
                k: {**v, "status": state[k]} for k, v in results.items()}}

        while failure is None:
            ready = [s for s in order if state[s.id] == "pending" and (
                s.id in unblocked or all(state[d] in ENDED for d in s.depends_on))]
            if not ready:
                break
            runnable = []
            for step in ready:
                if step.condition and not condition_holds(step.condition, scope()):
                    state[step.id] = "skipped"
                    results[step.id] = SKIPPED
                    n += 3
                    await self.steps.note(run_id, n, "note",
                                          f"{step.id}: skipped (condition false)", {})
                else:
                    runnable.append(step)
            gates = [s for s in runnable if s.kind == "approval"]
            batch = [s for s in runnable if s.kind != "approval"] or gates[:1]
            numbers = []
            for _ in batch:
                n += 3
                numbers.append(n)
            current = scope()
            outcomes = await asyncio.gather(*(
                self.run_step(run_id, number, workflow, step, current)
                for number, step in zip(numbers, batch, strict=True)))
            for number, step, outcome in zip(numbers, batch, outcomes, strict=True):
                results[step.id] = outcome
                state[step.id] = "completed" if outcome["ok"] else "failed"
                await self.steps.note(run_id, number + 1, "note",
                                      f"{step.id}: {state[step.id]}",
                                      {"output": outcome.get("output")})
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
        await self.steps.finish(run_id, n + 3, status.value, stop.value, answer, failure,
                                {"input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0})
        return {"status": status.value, "answer": answer, "error": failure,
                "steps": dict(state)}
