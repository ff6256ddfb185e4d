"""Front tools for run templates and schedules: thin wrappers over TemplateRuns and
ScheduleService."""

from __future__ import annotations

from typing import Annotated, Any

from fastmcp import Context, FastMCP
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from orchestrator_mcp.auth import caller_id
from orchestrator_mcp.config.templates import TemplateDef
from orchestrator_mcp.front.approval_app import CARD_APP
from orchestrator_mcp.front.runs_tools import (
    MAX_WAIT,
    IdempotencyKey,
    RunView,
    idempotency_for,
    start_and_follow,
)
from orchestrator_mcp.front.scopes import current_principal
from orchestrator_mcp.runs.engine import RunEngine
from orchestrator_mcp.schedules.service import ScheduleService, ScheduleView
from orchestrator_mcp.workflows.templates import TemplateRuns

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


class TemplateInfo(BaseModel):
    name: str
    description: str
    profile: str
    parameters: dict[str, Any] = Field(description="name → type, description, default, "
                                       "required")
    budgets: dict[str, Any] = Field(description="budgets that replace the profile's")

    @classmethod
    def of(cls, name: str, template: TemplateDef) -> TemplateInfo:
        return cls(name=name, description=template.description, profile=template.profile,
                   parameters={k: v.model_dump() for k, v in template.parameters.items()},
                   budgets=template.budget_overrides())


def register_template_tools(mcp: FastMCP, engine: RunEngine, templates: TemplateRuns,
                            schedules: ScheduleService) -> None:
    @mcp.tool(annotations=READ_ONLY)
    def list_templates() -> list[TemplateInfo]:
        """Run templates: named checks with typed parameters (start one with run_template)."""
        return [TemplateInfo.of(name, t) for name, t in sorted(templates.definitions.items())]

    @mcp.tool(app=CARD_APP)
    async def run_template(
        name: Annotated[str, Field(description="a template from list_templates",
                                   min_length=1, max_length=64)],
        params: Annotated[dict[str, Any] | None, "values for the template's parameters"
                          ] = None,
        wait: Annotated[bool, "wait until it ends; approvals are asked inline"] = False,
        wait_seconds: Annotated[float, Field(gt=0, le=MAX_WAIT)] = 120,
        idempotency_key: IdempotencyKey = None,
        ctx: Context | None = None,
    ) -> RunView:
        """Start a run from a template: its goal is rendered with the parameters (checked
        against their types) and run under the template's profile and budgets."""
        principal = current_principal()
        return await start_and_follow(
            engine, lambda: templates.submit(
                name, params, idempotency=idempotency_for(idempotency_key),
                owner=caller_id(principal),
                limits=principal.limits if principal else None),
            wait, wait_seconds, ctx)

    @mcp.tool(annotations=READ_ONLY)
    async def list_schedules() -> list[ScheduleView]:
        """Schedules: cron, what each tick starts, the next fire times, and the last run a
        tick started with its outcome."""
        return await schedules.views()
