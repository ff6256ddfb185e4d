"""The planner loop as a DBOS workflow: every LLM call and every tool call is a step.

After a crash DBOS replays the workflow: completed steps return their recorded output
instead of running again, so the loop rebuilds the same conversation and carries on from
the first step that has no record. Tool calls, approvals and child runs are the step
layer's (`runs.steps`); this module adds the model call and the loop around it.

This module imports DBOS, so only the run engine imports it, after start-up.
"""

from __future__ import annotations

import re
import time
from typing import Any

from dbos import DBOS, DBOSConfiguredInstance

from orchestrator_mcp.config import ProfileConfig
from orchestrator_mcp.llm import Completion, LLMError, Message, ToolCall, ToolSpec
from orchestrator_mcp.runs import memory_calls, prompts
from orchestrator_mcp.runs.kinds import INSTANCE, PLANNER
from orchestrator_mcp.runs.models import RunStatus, StepRecord, StopReason, Usage
from orchestrator_mcp.runs.steps import RunSteps, ToolOutcome, ToolPolicy
from orchestrator_mcp.telemetry import metrics, tracing

MAX_DELEGATION_DEPTH = 3  # a delegated run may delegate, up to this many levels
DELEGATE_TOOL = prompts.DELEGATE_TOOL


def _count_llm(completion: Completion, cost: float | None, seconds: float) -> None:
    labels = (completion.provider, completion.model)
    metrics.LLM_TOKENS.labels(*labels, "input").inc(completion.usage.input_tokens)
    metrics.LLM_TOKENS.labels(*labels, "output").inc(completion.usage.output_tokens)
    if cost:
        metrics.LLM_COST.labels(*labels).inc(cost)
    metrics.STEP_SECONDS.labels("llm").observe(seconds)


def _over_budget(profile: ProfileConfig, usage: Usage) -> StopReason | None:
    budgets = profile.budgets
    if budgets.max_tokens is not None and usage.tokens >= budgets.max_tokens:
        return StopReason.MAX_TOKENS
    if (budgets.max_cost_usd is not None and usage.cost_usd is not None
            and usage.cost_usd >= budgets.max_cost_usd):
        return StopReason.MAX_COST
    return None


@DBOS.dbos_class(PLANNER.class_name)
class Planner(DBOSConfiguredInstance):
    def __init__(self, steps: RunSteps) -> None:
        self.steps = steps
        super().__init__(INSTANCE)

    # ---- steps --------------------------------------------------------------------------

    @DBOS.step(name="llm_call")
    async def llm_step(self, run_id: str, n: int, profile_name: str,
                       messages: list[dict[str, Any]], deadline: float,
                       usage: dict[str, Any]) -> dict[str, Any]:
        """One model call over the profile's current catalog, and what the policy says of
        each call it asks for. The budget clock and the catalog are read here, so a replay
        sees the same decisions."""
        if time.time() > deadline:
            return {"stop": StopReason.MAX_SECONDS.value}
        ports = self.steps.ports
        profile = self.steps.profile(profile_name)
        tools = await self.steps.profile_tools(profile)
        builtin = memory_calls.specs(profile)
        if profile.delegates:
            builtin.append(prompts.delegate_spec(profile.delegates, dict(ports.profiles)))
        for spec in builtin:  # a built-in tool's name is the built-in's, not a server's
            tools.pop(spec.name, None)
        specs = [ToolSpec(name=name, description=entry.tool.description or name,
                          input_schema=entry.tool.input_schema)
                 for name, entry in sorted(tools.items())] + builtin
        provider = ports.provider_for(profile)
        started = time.perf_counter()
        try:
            with tracing.llm_span(run_id, provider.name, provider.model,
                                  profile=profile_name, step=n) as span:
                completion = await provider.complete(
                    [Message.model_validate(m) for m in messages], specs)
                span.completion(completion)
        except LLMError as exc:
            await self.steps.record(run_id, n, "llm", f"model call failed: {exc}")
            return {"error": str(exc)}
        cost = ports.cost_of(completion.provider, completion.model,
                             completion.usage.input_tokens, completion.usage.output_tokens)
        _count_llm(completion, cost, time.perf_counter() - started)
        total = Usage.model_validate(usage).add(completion.usage.input_tokens,
                                                completion.usage.output_tokens, cost)
        decisions = []
        for call in completion.tool_calls:
            if call.name == DELEGATE_TOOL and profile.delegates:
                decisions.append({"allowed": True, "delegate": True})
            elif (memory := memory_calls.policy(call.name, profile)) is not None:
                decisions.append(memory)
            else:
                decisions.append(ToolPolicy.of(tools.get(call.name), profile).model_dump())
        calls = ", ".join(c.name for c in completion.tool_calls)
        step = StepRecord(n=n, kind="llm", at=time.time(),
                          summary=f"model asked for {calls}" if calls else "model answered",
                          detail={"text": completion.text, "model": completion.model,
                                  "provider": completion.provider, "cost_usd": cost,
                                  "tool_calls": [c.model_dump() for c in completion.tool_calls],
                                  "usage": completion.usage.model_dump()})
        await self.steps.db(ports.store.add_step, run_id, step, usage=total)
        ports.notify(run_id)
        return {"completion": completion.model_dump(), "usage": total.model_dump(),
                "decisions": decisions}

    # ---- the workflow -------------------------------------------------------------------

    @DBOS.workflow(name=PLANNER.workflow_name)
    async def run(self, run_id: str) -> dict[str, Any]:
        async with self.steps.admitted(run_id):
            return await self._plan(run_id)

    async def _plan(self, run_id: str) -> dict[str, Any]:
        spec = await self.steps.start(run_id)
        profile = self.steps.profile(spec["profile"])
        deadline = spec["created_at"] + profile.budgets.max_seconds
        messages: list[dict[str, Any]] = [
            Message(role="system", content=prompts.system_prompt(profile.role)).model_dump(),
            Message(role="user", content=prompts.goal_message(spec["goal"], spec["context"]))
            .model_dump(),
        ]
        usage = Usage()
        n = 0
        if profile.memory.enabled and profile.memory.recall_top_k:
            n += 1
            notes = await self.steps.memory_notes(run_id, n, spec["profile"], spec["goal"])
            if notes:
                messages.append(Message(role="user", content=notes).model_dump())

        async def finish(status: RunStatus, stop: StopReason, answer: str | None = None,
                         error: str | None = None) -> dict[str, Any]:
            await self.steps.finish(run_id, n + 1, status.value, stop.value, answer, error,
                                    usage.model_dump())
            return {"status": status.value, "stop_reason": stop.value, "answer": answer,
                    "error": error}

        for _ in range(profile.budgets.max_steps):
            n += 1
            outcome = await self.llm_step(run_id, n, spec["profile"], messages, deadline,
                                          usage.model_dump())
            if "stop" in outcome:
                return await finish(RunStatus.FAILED, StopReason(outcome["stop"]),
                                    error="the run's time budget (max_seconds) ran out")
            if "error" in outcome:
                return await finish(RunStatus.FAILED, StopReason.LLM_ERROR,
                                    error=outcome["error"])
            completion = Completion.model_validate(outcome["completion"])
            usage = Usage.model_validate(outcome["usage"])
            if not completion.tool_calls:
                return await finish(RunStatus.COMPLETED, StopReason.ANSWERED,
                                    answer=completion.text)
            messages.append(Message(role="assistant", content=completion.text,
                                    tool_calls=completion.tool_calls).model_dump())
            for call, decision in zip(completion.tool_calls, outcome["decisions"],
                                      strict=True):
                n += 1
                text = await self._one_call(run_id, n, spec["profile"], call, decision)
                messages.append(Message(role="tool", content=text, tool_call_id=call.id,
                                        name=call.name).model_dump())
                n += 2  # room for the approval records of this call
            stop = _over_budget(profile, usage)
            if stop is not None:
                return await finish(RunStatus.FAILED, stop,
                                    error=f"the run's {stop.value.removeprefix('budget_')} "
                                    "budget ran out")
        return await finish(RunStatus.FAILED, StopReason.MAX_STEPS,
                            error=f"the model did not answer within "
                            f"{profile.budgets.max_steps} steps (max_steps)")

    async def _one_call(self, run_id: str, n: int, profile_name: str, call: ToolCall,
                        prepared: dict[str, Any]) -> str:
        """What the model reads back for one call it asked for."""
        if not prepared["allowed"]:
            await self.steps.record(run_id, n, "tool",
                                    f"{call.name}: not in this profile's catalog")
            return prompts.not_executed(
                call.name, "no such tool in your catalog; use only the tools you were given")
        if prepared.get("delegate"):
            return await self._delegate(run_id, n, profile_name, call.arguments)
        policy = ToolPolicy.model_validate(prepared)
        arguments = call.arguments
        approved_by = None
        key = f"{n}:{call.id}"  # models may reuse call ids; the position in the run is unique
        if policy.approval:
            rules = self.steps.profile(profile_name).approval
            decision = await self.steps.await_approval(run_id, n, key, call.name, arguments,
                                                       policy.approval, rules)
            if decision is None:
                return prompts.not_executed(call.name,
                                            "approval expired before a human decided")
            if not decision.approved:
                why = f" Reason given: {decision.reason}" if decision.reason else ""
                return prompts.not_executed(call.name, f"a human rejected this call.{why}")
            if decision.modified_arguments is not None:
                arguments = decision.modified_arguments
            approved_by = decision.decided_by
        if prepared.get("memory"):
            return await self.steps.memory_call(run_id, n + 2, profile_name, call.name,
                                                arguments, approved_by)
        outcome = await self.steps.tool_call(run_id, n + 2, key, call.name, arguments,
                                             policy.retry_safe)
        return ToolOutcome.model_validate(outcome).text

    async def _delegate(self, run_id: str, n: int, profile_name: str,
                        arguments: dict[str, Any]) -> str:
        allowed = self.steps.profile(profile_name).delegates
        agent, task = arguments.get("agent"), arguments.get("task")
        error = None
        if agent not in allowed:
            error = f"agent {agent!r} is not one you may delegate to ({', '.join(allowed)})"
        elif not isinstance(task, str) or not task.strip():
            error = "task must be a non-empty string saying what the agent should do"
        elif len(re.findall(r"-d\d+(?=-|$)", run_id)) >= MAX_DELEGATION_DEPTH:
            error = (f"delegation is limited to {MAX_DELEGATION_DEPTH} levels; answer with "
                     "what you know")
        if error is not None:
            return prompts.not_executed(DELEGATE_TOOL, error)
        assert isinstance(agent, str) and isinstance(task, str)
        child_id = f"{run_id}-d{n}"
        await self.steps.note(run_id, n, "tool", f"delegated to {agent}: child run {child_id}",
                              {"tool": DELEGATE_TOOL, "child_run": child_id, "agent": agent})
        result = await self.steps.run_child(run_id, child_id, task, agent,
                                            source="delegation",
                                            context={"delegated_by": run_id})
        return prompts.delegation_result(child_id, result)
