"""Starting workflow runs: the definitions, their inputs checked by a pydantic model built
from each input spec, and the run kind the engine executes them as."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
)

from orchestrator_mcp.config.http import PrincipalLimits
from orchestrator_mcp.runs.errors import RunError, RunNotFound
from orchestrator_mcp.runs.idempotency import Idempotency
from orchestrator_mcp.runs.kinds import RunKind
from orchestrator_mcp.runs.models import RunRecord, RunStatus
from orchestrator_mcp.workflows.definitions import WorkflowDef, WorkflowInput

if TYPE_CHECKING:
    from orchestrator_mcp.runs.engine import RunEngine
    from orchestrator_mcp.runs.steps import RunSteps


def _from_text(kind: type) -> Any:
    """Inputs given on a command line arrive as text: '8080' for an integer, 'true'."""
    def convert(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if kind is bool:
            return {"true": True, "false": False}.get(value.strip().lower(), value)
        try:
            return kind(value)
        except ValueError:
            return value
    return BeforeValidator(convert)


_TYPES: dict[str, Any] = {
    "string": StrictStr,
    "integer": Annotated[StrictInt, _from_text(int)],
    "number": Annotated[StrictInt | StrictFloat, _from_text(float)],
    "boolean": Annotated[StrictBool, _from_text(bool)],
    "object": dict[str, Any],
    "array": list[Any],
}


def _inputs_model(name: str, specs: Mapping[str, WorkflowInput]) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for key, spec in specs.items():
        required = spec.required and spec.default is None
        fields[key] = (_TYPES[spec.type], Field(... if required else spec.default,
                                                description=spec.description))
    return create_model(f"Inputs_{name}", __config__=ConfigDict(extra="forbid", strict=False),
                        **fields)


def check_inputs(name: str, specs: Mapping[str, WorkflowInput], given: dict[str, Any], *,
                 owner: str = "workflow", noun: str = "input") -> dict[str, Any]:
    """The values for input specs (a workflow's inputs, a template's parameters), defaults
    filled in; a RunError naming the first problem (unknown, missing or mistyped value)."""
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise RunError(f"unknown {noun}(s) {', '.join(unknown)}; the {owner} takes: "
                       f"{', '.join(sorted(specs)) or f'no {noun}s'}")
    try:
        return _inputs_model(name, specs).model_validate(given).model_dump()
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        key = str(problem["loc"][0])
        spec = specs[key]
        if problem["type"] == "missing":
            raise RunError(f"{noun} '{key}' is required ({spec.description or spec.type})"
                           ) from None
        value = given[key]
        shown = repr(value)[:80] if isinstance(value, str) else type(value).__name__
        raise RunError(f"{noun} '{key}' must be a{'n' if spec.type[0] in 'aeiou' else ''} "
                       f"{spec.type}, not {shown}") from None


def _executor(definitions: Mapping[str, WorkflowDef]) -> Any:
    def build(steps: RunSteps) -> Any:
        from orchestrator_mcp.workflows.executor import WorkflowExecutor

        return WorkflowExecutor(steps, definitions)
    return build


def run_kind(definitions: Mapping[str, WorkflowDef]) -> RunKind:
    """How the engine executes workflow runs (its DBOS names are the executor's)."""
    return RunKind("workflow", "orchestrator_workflow", "orchestrator_workflow_executor",
                   _executor(definitions))


class WorkflowRuns:
    """The workflows a front, the CLI and alert rules can start."""

    def __init__(self, engine: RunEngine, definitions: Mapping[str, WorkflowDef]) -> None:
        self.engine = engine
        self.definitions = definitions

    def get(self, name: str) -> WorkflowDef:
        if name not in self.definitions:
            known = ", ".join(sorted(self.definitions)) or "none defined"
            raise RunNotFound(f"unknown workflow '{name}'; workflows: {known}")
        return self.definitions[name]

    async def submit(self, name: str, inputs: dict[str, Any] | None = None, *,
                     source: str = "mcp", run_id: str | None = None,
                     idempotency: Idempotency | None = None, owner: str | None = None,
                     limits: PrincipalLimits | None = None) -> RunRecord:
        """Queue a workflow run; with `run_id`, submitting the same id again changes
        nothing; with `idempotency`, the same key and request give the first one's run.
        `owner` and `limits` as for `RunEngine.submit`."""
        workflow = self.get(name)
        values = check_inputs(name, workflow.inputs, inputs or {})
        now = time.time()
        if idempotency is not None:
            run_id = idempotency.run_id("wf")
        record = RunRecord(id=run_id or f"wf_{uuid.uuid4().hex[:16]}",
                           goal=f"workflow {name}", profile=workflow.profile,
                           status=RunStatus.QUEUED, workflow=name, source=source, owner=owner,
                           context={"inputs": values}, created_at=now, updated_at=now)
        return await self.engine.submit_record(
            record, kind="workflow", idempotency=idempotency,
            request={"kind": "workflow", "name": name, "inputs": values}, limits=limits)
