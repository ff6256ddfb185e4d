"""What durable runs need from the rest of the process, as typed ports.

The run engine builds one `RunPorts` when it launches DBOS and hands it to the step layer
(`runs.steps.RunSteps`); the planner and the workflow executor reach everything through
that step layer. Nothing here imports DBOS.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import mcp_types

from orchestrator_mcp.config import ProfileConfig
from orchestrator_mcp.gateway import Catalog
from orchestrator_mcp.llm import LLMProvider
from orchestrator_mcp.runs.models import RunRecord

if TYPE_CHECKING:
    from orchestrator_mcp.memory import Memories
    from orchestrator_mcp.runs.store import RunStore
    from orchestrator_mcp.telemetry.audit_store import AuditLog


class ProviderFor(Protocol):
    """The LLM provider a profile uses (raises LLMNotConfigured with how to configure)."""

    def __call__(self, profile: ProfileConfig, /) -> LLMProvider: ...


class CostOf(Protocol):
    """US dollars a model call cost, or None when the model's price is unknown."""

    def __call__(self, provider: str, model: str, input_tokens: int, output_tokens: int, /
                 ) -> float | None: ...


class Tools(Protocol):
    """The gateway as runs see it: a catalog that changes, and calls into it."""

    @property
    def catalog(self) -> Catalog: ...

    async def wait_settled(self, timeout: float) -> None: ...

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None
                        ) -> mcp_types.CallToolResult: ...


class Notify(Protocol):
    """The run changed: wakes its waiters and listeners; `status`: its status changed
    (what `RunEngine.wait` waits for)."""

    def __call__(self, run_id: str, /, *, status: bool = False) -> None: ...


class ChildRuns(Protocol):
    """Records and queues the runs a run starts (delegations, workflow agent steps), and
    admits runs to execute in this process."""

    async def create(self, goal: str, profile: str, context: dict[str, Any] | None = None, *,
                     parent_id: str | None = None, source: str = "mcp",
                     run_id: str | None = None) -> RunRecord: ...

    async def enqueue(self, run_id: str, *, kind: str = "run", child: bool = False) -> None: ...

    def slot(self, *, child: bool) -> AbstractAsyncContextManager[None]: ...


@dataclass(frozen=True)
class RunPorts:
    store: RunStore
    audit: AuditLog
    memory: Memories | None  # None: no profile can remember (the app built no index)
    tools: Tools
    profiles: Mapping[str, ProfileConfig]
    provider_for: ProviderFor
    cost_of: CostOf
    children: ChildRuns
    notify: Notify
    connect_timeout: float  # how long a step waits for servers still connecting
