"""Run templates: a named goal with typed parameters, rendered in a sandbox and started as
a goal run under the template's profile.

Parameters are checked by the validator workflow inputs use; the goal is rendered with
them as data (a value holding `{{ ... }}` stays that text), in a thread, and the output is
cut off at the goal's size limit while it is produced rather than after.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from orchestrator_mcp.config.http import PrincipalLimits
from orchestrator_mcp.config.templates import TemplateDef, goal_environment
from orchestrator_mcp.runs.errors import RunError, RunNotFound
from orchestrator_mcp.runs.idempotency import Idempotency
from orchestrator_mcp.runs.models import RunRecord
from orchestrator_mcp.workflows.submit import check_inputs

if TYPE_CHECKING:
    from orchestrator_mcp.runs.engine import RunEngine

MAX_GOAL_CHARS = 10_000  # what a run's goal may hold
MAX_PARAMETER_BYTES = 64 * 1024  # the parameters of one request, as JSON


def render_goal(name: str, template: TemplateDef, values: dict[str, Any]) -> str:
    """The template's goal for these (checked) values; a RunError when it cannot render
    or comes out empty or longer than MAX_GOAL_CHARS."""
    from jinja2 import TemplateError

    parts: list[str] = []
    size = 0
    try:
        for chunk in goal_environment().from_string(template.goal).generate(**values):
            size += len(chunk)
            if size > MAX_GOAL_CHARS:
                raise RunError(f"template '{name}' renders a goal longer than "
                               f"{MAX_GOAL_CHARS:,} characters with these parameters; give "
                               "fewer or shorter values")
            parts.append(chunk)
    except TemplateError as exc:
        raise RunError(f"template '{name}' could not be rendered with these parameters: "
                       f"{exc}") from None
    goal = "".join(parts).strip()
    if not goal:
        raise RunError(f"template '{name}' renders an empty goal with these parameters")
    return goal


def _check_size(parameters: dict[str, Any]) -> None:
    try:
        size = len(json.dumps(parameters, default=str))
    except (RecursionError, ValueError):
        raise RunError("the parameters are nested too deeply; give plain values, lists "
                       "and objects") from None
    if size > MAX_PARAMETER_BYTES:
        raise RunError(f"the parameters are larger than {MAX_PARAMETER_BYTES // 1024} KB; "
                       f"pass less data (a goal holds at most {MAX_GOAL_CHARS:,} characters)")


class TemplateRuns:
    """The templates a front, the CLI and schedules can start."""

    def __init__(self, engine: RunEngine, definitions: Mapping[str, TemplateDef]) -> None:
        self.engine = engine
        self.definitions = definitions

    def get(self, name: str) -> TemplateDef:
        if name not in self.definitions:
            known = ", ".join(sorted(self.definitions)) or "none defined"
            raise RunNotFound(f"unknown template '{name}'; templates: {known}")
        return self.definitions[name]

    async def submit(self, name: str, parameters: dict[str, Any] | None = None, *,
                     source: str = "mcp", run_id: str | None = None,
                     idempotency: Idempotency | None = None, owner: str | None = None,
                     limits: PrincipalLimits | None = None) -> RunRecord:
        """Check the parameters, render the goal and queue the run (see RunEngine.submit
        for `run_id`, `idempotency`, `owner` and `limits`)."""
        template = self.get(name)
        given = parameters or {}
        _check_size(given)
        values = check_inputs(name, template.parameters, given, owner="template",
                              noun="parameter")
        goal = await asyncio.to_thread(render_goal, name, template, values)
        return await self.engine.submit(
            goal, template.profile_for(name), {"template": name, "parameters": values},
            source=source, run_id=run_id, idempotency=idempotency, owner=owner,
            limits=limits)
