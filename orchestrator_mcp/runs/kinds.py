"""Kinds of durable run, named without importing DBOS.

Each kind's workflow is the `run(run_id)` method of a DBOS configured instance that
`build` makes from the step layer when the executing engine launches DBOS (importing the
kind's module, and so DBOS, only then). A process that only submits enqueues by these
names through a DBOS client.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator_mcp.runs.steps import RunSteps

INSTANCE = "runs"  # every configured instance's name, recorded by DBOS with each workflow


@dataclass(frozen=True)
class RunKind:
    name: str  # "run", "workflow": what `RunEngine.enqueue(kind=...)` takes
    workflow_name: str
    class_name: str
    build: Callable[[RunSteps], Any]


def _planner(steps: RunSteps) -> Any:
    from orchestrator_mcp.runs.planner import Planner

    return Planner(steps)


PLANNER = RunKind("run", "orchestrator_run", "orchestrator_planner", _planner)
