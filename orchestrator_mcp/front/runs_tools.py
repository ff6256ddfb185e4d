"""Front tools for goal runs: thin wrappers that validate input and call the run engine."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from mcp_types import InputRequiredResult, ToolAnnotations
from pydantic import BaseModel, Field

from orchestrator_mcp.agents import agent_names
from orchestrator_mcp.auth import caller_id, run_viewer
from orchestrator_mcp.front.approval_app import CARD_APP, shows_cards
from orchestrator_mcp.front.inline_approval import (
    ApprovalAnswer,
    accepted_answer,
    ask,
    can_ask,
    input_required,
    modern,
)
from orchestrator_mcp.front.scopes import current_principal
from orchestrator_mcp.runs.engine import RunEngine
from orchestrator_mcp.runs.errors import RunError
from orchestrator_mcp.runs.idempotency import Idempotency
from orchestrator_mcp.runs.models import (
    PendingApproval,
    RunEvent,
    RunRecord,
    RunStatus,
    Usage,
    parse_since,
)
from orchestrator_mcp.runs.policy import DEFAULT_PROFILE
from orchestrator_mcp.runs.routing import AgentCard, choose_agent
from orchestrator_mcp.telemetry.audit import AuditEntry
from orchestrator_mcp.workflows.definitions import WorkflowDef
from orchestrator_mcp.workflows.submit import WorkflowRuns

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
MAX_WAIT = 600.0


class RunView(BaseModel):
    """What a host needs to act on a run."""

    run_id: str
    status: RunStatus
    profile: str
    goal: str
    answer: str | None = None
    error: str | None = None
    stop_reason: str | None = None
    pending_approval: PendingApproval | None = None
    usage: Usage
    owner: str | None = Field(default=None, description="the principal that started it")
    next: str = Field(description="what to do next")

    @classmethod
    def of(cls, record: RunRecord) -> RunView:
        if record.status is RunStatus.AWAITING_APPROVAL and record.pending_approval:
            hint = (f"call approve(run_id='{record.id}', approved=true|false) to decide on "
                    f"{record.pending_approval.tool}")
        elif record.status.finished:
            hint = "the run has ended"
        else:
            hint = f"call get_run(run_id='{record.id}') later, or run(..., wait=true)"
        return cls(run_id=record.id, status=record.status, profile=record.profile,
                   goal=record.goal, answer=record.answer, error=record.error,
                   stop_reason=record.stop_reason.value if record.stop_reason else None,
                   pending_approval=record.pending_approval, usage=record.usage,
                   owner=record.owner, next=hint)


class WorkflowInfo(BaseModel):
    name: str
    description: str
    inputs: dict[str, Any]
    steps: list[dict[str, Any]]

    @classmethod
    def of(cls, name: str, workflow: WorkflowDef) -> WorkflowInfo:
        return cls(name=name, description=workflow.description,
                   inputs={k: v.model_dump() for k, v in workflow.inputs.items()},
                   steps=[{"id": s.id, "kind": s.kind, "tool": s.tool,
                           "depends_on": s.depends_on, "condition": s.condition}
                          for s in workflow.steps])


class CostLine(BaseModel):
    key: str
    runs: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    unpriced_calls: int = Field(description="model calls whose model has no known price")


def summarize_costs(records: list[RunRecord], group_by: str) -> list[CostLine]:
    lines: dict[str, dict[str, Any]] = {}
    for record in records:
        for step in record.steps:
            if step.kind != "llm" or "usage" not in step.detail:
                continue
            if group_by == "day":
                key = datetime.fromtimestamp(step.at).strftime("%Y-%m-%d")
            elif group_by == "profile":
                key = record.profile
            else:
                key = f"{step.detail.get('provider', '?')}/{step.detail.get('model', '?')}"
            line = lines.setdefault(key, {"runs": set(), "input_tokens": 0, "output_tokens": 0,
                                          "cost_usd": 0.0, "unpriced_calls": 0})
            line["runs"].add(record.id)
            line["input_tokens"] += step.detail["usage"].get("input_tokens", 0)
            line["output_tokens"] += step.detail["usage"].get("output_tokens", 0)
            cost = step.detail.get("cost_usd")
            if cost is None:
                line["unpriced_calls"] += 1
            else:
                line["cost_usd"] += cost
    return [CostLine(key=key, runs=len(v.pop("runs")), **{**v, "cost_usd": round(
        v["cost_usd"], 6)}) for key, v in sorted(lines.items())]


class AgentInfo(BaseModel):
    name: str
    description: str
    tools: int = Field(description="tools of this agent in the catalog")


class ProfileInfo(BaseModel):
    name: str
    description: str
    servers: list[str]
    model: str | None
    provider: str | None


def _via(ctx: Context | None) -> str:
    """The face and host a decision came through (shown with it; identity is the
    principal's id)."""
    if ctx is None:
        return "mcp"
    with contextlib.suppress(Exception):
        info = ctx.session.client_params.client_info  # type: ignore[union-attr]
        return f"mcp:{info.name}"
    return "mcp"


def _caller_id() -> str:
    return caller_id(current_principal())


def _viewer() -> str | None:
    return run_viewer(current_principal())


def _approval_question(record: RunRecord) -> str:
    pending = record.pending_approval
    assert pending is not None
    return (f"Run {record.id} ({record.goal[:200]}) wants to call {pending.tool} with "
            f"{json.dumps(pending.arguments)[:1500]}. {pending.reason}. Approve?")


def _input_required(record: RunRecord) -> InputRequiredResult:
    return input_required(_approval_question(record), record.id)


async def _decide(engine: RunEngine, record: RunRecord, answer: ApprovalAnswer,
                  ctx: Context) -> None:
    await engine.approve(record.id, answer.approved, reason=answer.reason or None,
                         decided_by=_caller_id(), via=f"{_via(ctx)} (inline)")


async def _apply_inline_answer(engine: RunEngine, run_id: str, ctx: Context | None) -> bool:
    """Decide with the answer a retried call carries; False when the user declined."""
    answer = accepted_answer(ctx) if ctx is not None else None
    if answer is None:
        return False
    record = await engine.get(run_id, viewer=_viewer())
    if record.status is RunStatus.AWAITING_APPROVAL:
        await _decide(engine, record, answer, ctx)
    return True


def _progress_reporter(ctx: Context | None) -> Any:
    """Progress notifications while a host waits: one per new step of the run."""
    if ctx is None:
        return None
    seen = 0

    async def report(events: list[RunEvent]) -> None:
        nonlocal seen
        steps = [e for e in events if e.event == "step"]
        if steps:
            seen += len(steps)
            with contextlib.suppress(Exception):  # a host without a progress token
                await ctx.report_progress(seen, None, steps[-1].data.get("summary"))

    return report


IdempotencyKey = Annotated[str | None, Field(
    max_length=255,
    description="a UUID of yours: a retry with the same key and request returns the first "
                "call's run")]


def idempotency_for(key: str | None) -> Idempotency | None:
    """The caller's idempotency key as the engine takes it (keys are per principal)."""
    if key is None:
        return None
    principal = current_principal()
    return Idempotency(key, principal.id if principal is not None else "local")


async def _start_run(engine: RunEngine, goal: str, profile: str, context: dict[str, Any] | None,
                     wait: bool, wait_seconds: float, ctx: Context | None,
                     idempotency_key: str | None = None,
                     asked: dict[str, Any] | None = None) -> RunView:
    principal = current_principal()
    return await start_and_follow(
        engine, lambda: engine.submit(goal, profile, context,
                                      idempotency=idempotency_for(idempotency_key),
                                      asked=asked, owner=caller_id(principal),
                                      limits=principal.limits if principal else None),
        wait, wait_seconds, ctx)


async def start_and_follow(engine: RunEngine, submit: Callable[[], Awaitable[RunRecord]],
                           wait: bool, wait_seconds: float, ctx: Context | None) -> RunView:
    """Submit a goal run and, with `wait`, follow it: progress notifications, and its
    approvals asked inline when the host can ask its user (a retried modern-era call
    carries the answer instead of submitting again)."""
    progress = _progress_reporter(ctx)
    resumed = ctx.request_state if ctx is not None else None
    declined = False
    if resumed:  # modern era: the host retried with its user's answer
        declined = not await _apply_inline_answer(engine, resumed, ctx)
        record = await engine.wait(resumed, wait_seconds, on_progress=progress)
    else:
        record = await submit()
        if wait:
            record = await engine.wait(record.id, wait_seconds, on_progress=progress)
    # A host that renders MCP Apps asks its user with the approval card the result shows.
    while (wait and record.status is RunStatus.AWAITING_APPROVAL and not declined
           and ctx is not None and can_ask(ctx) and not shows_cards(ctx)):
        if modern(ctx):
            return _input_required(record)  # type: ignore[return-value]
        answer = await ask(ctx, _approval_question(record))
        if answer is None:
            break  # declined or cancelled: the call stays pending for approve()
        await _decide(engine, record, answer, ctx)
        record = await engine.wait(record.id, wait_seconds, on_progress=progress)
    return RunView.of(record)


def enabled_agents(engine: RunEngine) -> list[str]:
    """The built-in agents `ask_agent` can ask: enabled, with a profile."""
    return [n for n in agent_names()
            if n in engine.gateway.connections and n in engine.profiles]


async def route_to_agent(engine: RunEngine, agent: str, task: str,
                         context: dict[str, Any] | None
                         ) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
    """The agent that takes `task` (for 'auto', chosen by routing), the context its run
    gets, and, for 'auto', what was asked (the idempotency fingerprint); a RunError naming
    the enabled agents when `agent` is none of them."""
    enabled = enabled_agents(engine)
    asked = None
    if agent == "auto" and enabled:
        route = await choose_agent(task, [
            AgentCard(name, engine.profiles[name].description,
                      [(t.name, t.tool.description or "")
                       for t in engine.gateway.catalog.for_server(name)])
            for name in enabled], engine.model_for(DEFAULT_PROFILE))
        asked = {"kind": "run", "goal": task, "profile": "auto", "context": context or {}}
        context = {**(context or {}), "routing": route.model_dump()}
        agent = route.agent
    if agent not in enabled:
        raise RunError(f"unknown or disabled agent {agent!r}; enabled agents: "
                       f"{', '.join(enabled) or 'none'} (enable them under agents: in "
                       "servers.yaml), or 'auto'")
    return agent, context, asked


def register_run_tools(mcp: FastMCP, engine: RunEngine,
                       workflows: WorkflowRuns | None = None) -> None:
    @mcp.tool(app=CARD_APP)
    async def run(
        goal: Annotated[str, Field(description="what the run should achieve", min_length=1,
                                   max_length=10_000)],
        profile: Annotated[str, "agent profile (list_profiles)"] = "default",
        context: Annotated[dict[str, Any] | None, "extra facts for the planner"] = None,
        wait: Annotated[bool, "wait until it ends; approvals are asked inline"] = False,
        wait_seconds: Annotated[float, Field(gt=0, le=MAX_WAIT)] = 120,
        idempotency_key: IdempotencyKey = None,
        ctx: Context | None = None,
    ) -> RunView:
        """Start a goal-based run: the planner calls catalog tools until it can answer.
        Risky calls wait for a human: inline when waiting and the host can ask its user,
        otherwise through approve()."""
        return await _start_run(engine, goal, profile, context, wait, wait_seconds, ctx,
                                idempotency_key)

    @mcp.tool(annotations=READ_ONLY)
    def list_agents() -> list[AgentInfo]:
        """The built-in IT-ops agents that are enabled: what each does and how many tools it
        has. Ask one with ask_agent."""
        return [AgentInfo(name=name, description=engine.profiles[name].description,
                          tools=sum(1 for e in engine.gateway.catalog.tools.values()
                                    if e.server == name))
                for name in agent_names()
                if name in engine.gateway.connections and name in engine.profiles]

    @mcp.tool(description=f"Ask a built-in agent ({', '.join(agent_names())}): a run with "
              "that agent's profile, its tools and the runbooks. agent='auto' picks one for "
              "the task (why: the run's context.routing).", app=CARD_APP)
    async def ask_agent(
        agent: Annotated[str, Field(description="an agent from list_agents, or 'auto'",
                                    min_length=1, max_length=64)],
        task: Annotated[str, Field(description="what the agent should find out or do",
                                   min_length=1, max_length=10_000)],
        context: Annotated[dict[str, Any] | None, "extra facts for the agent"] = None,
        wait: Annotated[bool, "wait for the answer; approvals are asked inline"] = True,
        wait_seconds: Annotated[float, Field(gt=0, le=MAX_WAIT)] = 120,
        idempotency_key: IdempotencyKey = None,
        ctx: Context | None = None,
    ) -> RunView:
        agent, context, asked = await route_to_agent(engine, agent, task, context)
        return await _start_run(engine, task, agent, context, wait, wait_seconds, ctx,
                                idempotency_key, asked)

    @mcp.tool(annotations=READ_ONLY, app=CARD_APP)
    async def get_run(run_id: Annotated[str, Field(min_length=1, max_length=64)]) -> RunRecord:
        """A run with its steps (model calls, tool calls, approvals), answer and usage."""
        return await engine.get(run_id, viewer=_viewer())

    @mcp.tool(annotations=READ_ONLY)
    async def list_runs(
        status: RunStatus | None = None,
        profile: str | None = None,
        since: Annotated[str | None, "epoch seconds or ISO 8601"] = None,
        limit: Annotated[int, Field(ge=1, le=200)] = 20,
        offset: Annotated[int, Field(ge=0)] = 0,
    ) -> list[RunView]:
        """Runs, newest first, filtered by status, profile and start time; paginated. Over
        HTTP a caller sees its own runs, or every run with the read_all scope."""
        records = await engine.list(status=status, profile=profile, since=parse_since(since),
                                    limit=limit, offset=offset, owner=_viewer())
        return [RunView.of(r) for r in records]

    @mcp.tool(annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True))
    async def cancel_run(run_id: Annotated[str, Field(min_length=1, max_length=64)]) -> RunView:
        """Cancel a run that has not ended."""
        return RunView.of(await engine.cancel(run_id, viewer=_viewer()))

    @mcp.tool(annotations=ToolAnnotations(destructive_hint=True), app=CARD_APP)
    async def approve(
        run_id: Annotated[str, Field(min_length=1, max_length=64)],
        approved: Annotated[bool, Field(strict=True, description="true runs the call")],
        modified_arguments: Annotated[
            dict[str, Any] | None, "run the call with these arguments instead"] = None,
        reason: Annotated[str | None, Field(max_length=2000)] = None,
        ctx: Context | None = None,
    ) -> RunView:
        """Decide on the tool call a run is waiting for (see its pending_approval). Under a
        four-eyes profile the run's owner may not approve, and `approvers` distinct
        principals must (pending_approval.approved_by shows who has)."""
        record = await engine.approve(run_id, approved, modified_arguments=modified_arguments,
                                      reason=reason, decided_by=_caller_id(), via=_via(ctx))
        return RunView.of(record)

    @mcp.tool(annotations=READ_ONLY)
    def list_profiles() -> list[ProfileInfo]:
        """Agent profiles a run can use."""
        return [ProfileInfo(name=name, description=p.description, servers=p.servers,
                            model=p.model, provider=p.provider)
                for name, p in sorted(engine.profiles.items())]

    @mcp.tool(annotations=READ_ONLY)
    def list_workflows() -> list[WorkflowInfo]:
        """YAML workflows: their inputs and steps (tool, agent, approval)."""
        definitions = workflows.definitions if workflows is not None else {}
        return [WorkflowInfo.of(name, w) for name, w in sorted(definitions.items())]

    @mcp.tool(app=CARD_APP)
    async def run_workflow(
        name: Annotated[str, Field(min_length=1, max_length=64)],
        inputs: Annotated[dict[str, Any] | None, "values for the workflow's inputs"] = None,
        wait: Annotated[bool, "wait until it ends or needs an approval"] = False,
        wait_seconds: Annotated[float, Field(gt=0, le=MAX_WAIT)] = 120,
        idempotency_key: IdempotencyKey = None,
        ctx: Context | None = None,
    ) -> RunView:
        """Run a workflow; its approval gates and tool approvals use approve()."""
        if workflows is None:
            raise ToolError("workflows are not enabled in this server")
        principal = current_principal()
        record = await workflows.submit(name, inputs,
                                        idempotency=idempotency_for(idempotency_key),
                                        owner=caller_id(principal),
                                        limits=principal.limits if principal else None)
        if wait:
            record = await engine.wait(record.id, wait_seconds,
                                       on_progress=_progress_reporter(ctx))
        return RunView.of(record)

    @mcp.tool(annotations=READ_ONLY)
    async def audit(
        run_id: str | None = None,
        tool: Annotated[str | None, "tool name, '*' as wildcard"] = None,
        kind: Literal["tool_call", "approval"] | None = None,
        since: Annotated[str | None, "epoch seconds or ISO 8601"] = None,
        limit: Annotated[int, Field(ge=1, le=1000)] = 100,
    ) -> list[AuditEntry]:
        """The audit log, newest first: tool calls (who, what, arguments with secrets
        redacted, outcome, duration) and approval decisions."""
        return await engine.audit(run_id=run_id, tool=tool, kind=kind,
                                  since=parse_since(since), limit=limit)

    @mcp.tool(annotations=READ_ONLY)
    async def costs(
        since: Annotated[str | None, "epoch seconds or ISO 8601 (default: 30 days ago)"] = None,
        group_by: Literal["day", "profile", "model"] = "day",
    ) -> list[CostLine]:
        """Model usage and cost of runs, summed by day, profile or model."""
        start = parse_since(since) or time.time() - 30 * 86400
        records = await engine.list(since=start, limit=10_000, owner=_viewer())
        detailed = [await engine.get(r.id) for r in records]
        return summarize_costs(detailed, group_by)

    @mcp.resource("orchestrator://runs/{run_id}", mime_type="application/json")
    async def run_resource(run_id: str) -> str:
        """A run: status, steps, pending approval, answer, usage."""
        return (await engine.get(run_id, viewer=_viewer())).model_dump_json(indent=2)
