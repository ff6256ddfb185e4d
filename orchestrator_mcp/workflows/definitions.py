"""Workflow definitions: YAML DAGs of tool, agent and approval steps.

Templates (`"{{ inputs.host }}"`) and conditions (`steps.diag.output.errors > 0`) use
Jinja2's sandbox: no Python evaluation, no access to object internals. Everything that
can be checked without the live catalog is checked here, at load.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from orchestrator_mcp.strict import Strict

StepId = str
_STEP_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)


def sandbox() -> Any:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(autoescape=False, undefined=StrictUndefined)


def referenced_steps(source: str, *, expression: bool) -> set[str]:
    """Step ids a template or expression reads through `steps.<id>`."""
    from jinja2 import nodes

    env = sandbox()
    tree = env.parse(f"{{{{ {source} }}}}" if expression else source)
    found = set()
    for node in tree.find_all(nodes.Getattr):
        if isinstance(node.node, nodes.Name) and node.node.name == "steps":
            found.add(node.attr)
    for node in tree.find_all(nodes.Getitem):
        if isinstance(node.node, nodes.Name) and node.node.name == "steps" \
                and isinstance(node.arg, nodes.Const):
            found.add(str(node.arg.value))
    return found


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


class WorkflowInput(Strict):
    type: Literal["string", "integer", "number", "boolean", "object", "array"] = "string"
    description: str = ""
    default: Any = None
    required: bool = False


class WorkflowStep(Strict):
    id: StepId
    kind: Literal["tool", "agent", "approval"] | None = None
    tool: str | None = Field(default=None, description="catalog tool name (kind tool)")
    arguments: dict[str, Any] = Field(default_factory=dict)
    profile: str | None = Field(default=None, description="profile of an agent step's run")
    task: str | None = Field(default=None, description="template: the agent step's goal")
    message: str | None = Field(default=None, description="template: what the approver sees")
    depends_on: list[StepId] = Field(default_factory=list)
    condition: str | None = Field(default=None, description="expression; false → skipped")
    on_failure: str = Field(default="stop", description="stop, continue, or goto:<step id>")

    @model_validator(mode="after")
    def _kind(self) -> WorkflowStep:
        if not _STEP_ID.match(self.id):
            raise ValueError(f"step id {self.id!r} must be a letter then letters, digits or _")
        given = {"tool": self.tool, "agent": self.task, "approval": self.message}
        present = [k for k, v in given.items() if v is not None]
        if self.kind is None:
            if len(present) != 1:
                raise ValueError(f"step {self.id!r}: give exactly one of 'tool' (a tool step), "
                                 "'task' (an agent step) or 'message' (an approval gate)")
            self.kind = present[0]  # type: ignore[assignment]
        elif given[self.kind] is None:
            needed = {"tool": "tool", "agent": "task", "approval": "message"}[self.kind]
            raise ValueError(f"step {self.id!r} of kind {self.kind} needs '{needed}'")
        if not (self.on_failure in ("stop", "continue") or self.on_failure.startswith("goto:")):
            raise ValueError(f"step {self.id!r}: on_failure must be stop, continue or "
                             f"goto:<step id>, not {self.on_failure!r}")
        return self

    @property
    def goto(self) -> str | None:
        return self.on_failure.removeprefix("goto:") if self.on_failure.startswith("goto:") \
            else None

    def templates(self) -> list[str]:
        return [t for t in [self.task, self.message, *_strings(self.arguments)] if t]


class WorkflowDef(Strict):
    description: str = ""
    profile: str = Field(default="default",
                         description="approval rules for tool steps; default agent profile")
    inputs: dict[str, WorkflowInput] = Field(default_factory=dict)
    steps: list[WorkflowStep] = Field(min_length=1)
    outputs: dict[str, str] = Field(default_factory=dict)

    @field_validator("steps")
    @classmethod
    def _graph(cls, steps: list[WorkflowStep]) -> list[WorkflowStep]:
        from jinja2 import TemplateSyntaxError

        ids = [s.id for s in steps]
        duplicates = {i for i in ids if ids.count(i) > 1}
        if duplicates:
            raise ValueError(f"step ids used twice: {', '.join(sorted(duplicates))}")
        known = set(ids)
        for step in steps:
            for dep in step.depends_on:
                if dep not in known:
                    raise ValueError(f"step {step.id!r} depends on unknown step {dep!r}")
            if step.goto is not None and step.goto not in known:
                raise ValueError(f"step {step.id!r}: on_failure goes to unknown step "
                                 f"{step.goto!r}")
        topological_order(steps)  # a cycle is an error
        ancestors = {s.id: _ancestors(s.id, steps) for s in steps}
        for step in steps:
            try:
                used = set().union(*(referenced_steps(t, expression=False)
                                     for t in step.templates()))
                if step.condition:
                    used |= referenced_steps(step.condition, expression=True)
            except TemplateSyntaxError as exc:
                raise ValueError(f"step {step.id!r}: template or condition error: "
                                 f"{exc.message}") from None
            for ref in sorted(used):
                if ref not in known:
                    raise ValueError(f"step {step.id!r} refers to unknown step {ref!r}")
                if ref not in ancestors[step.id]:
                    raise ValueError(f"step {step.id!r} reads steps.{ref} but does not depend "
                                     f"on it (add {ref!r} to depends_on)")
        return steps


def _ancestors(step_id: str, steps: list[WorkflowStep]) -> set[str]:
    by_id = {s.id: s for s in steps}
    seen: set[str] = set()
    stack = list(by_id[step_id].depends_on)
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(by_id[current].depends_on)
    return seen


def topological_order(steps: list[WorkflowStep]) -> list[str]:
    """The steps in an order where each comes after what it depends on (ties by position);
    a cycle is an error naming the steps on it."""
    from graphlib import CycleError, TopologicalSorter

    try:
        return list(TopologicalSorter({s.id: s.depends_on for s in steps}).static_order())
    except CycleError as exc:
        raise ValueError("steps depend on each other in a cycle: "
                         + " -> ".join(exc.args[1])) from None
