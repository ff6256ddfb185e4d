"""The planner's memory tools, memory_recall and memory_remember, offered beside the
catalog the way delegate_to_agent is (memory/ keeps the facts).

A remember is a write other runs will read, so its policy follows `memory.write`: with
`approve` the call waits for a human through the same approval sequence as a risky tool
call (a tool result that talks a model into remembering "always run X" stops there). The
arguments are hostile until validated: a bad call is answered NOT EXECUTED with what was
wrong. Nothing here imports DBOS; `RunSteps.memory_call` runs `call` as a step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator_mcp.config import ProfileConfig
from orchestrator_mcp.errors import UserError
from orchestrator_mcp.memory import Memories, RememberRequest
from orchestrator_mcp.runs import prompts

APPROVAL_REASON = ("the profile's memory.write is 'approve': what a run remembers is given "
                   "to later runs, so a human checks it first")
MAX_QUERY_CHARS = 2000


def policy(name: str, profile: ProfileConfig) -> dict[str, Any] | None:
    """The planner's decision on a call of `name`, when it is a memory tool this profile
    has (None otherwise: then it is a catalog tool, or no tool at all)."""
    memory = profile.memory
    if not memory.enabled or name not in prompts.MEMORY_TOOLS:
        return None
    if name == prompts.REMEMBER_TOOL:
        if memory.write == "off":
            return None
        return {"allowed": True, "memory": True,
                "approval": APPROVAL_REASON if memory.write == "approve" else None}
    return {"allowed": True, "memory": True}


def specs(profile: ProfileConfig) -> list[Any]:
    memory = profile.memory
    return prompts.memory_specs(memory.write != "off") if memory.enabled else []


@dataclass
class MemoryOutcome:
    text: str  # what the model reads, fenced
    summary: str  # the run history's line
    is_error: bool = False
    detail: dict[str, Any] = field(default_factory=dict)


async def call(memories: Memories | None, profile: ProfileConfig, profile_name: str,
               tool: str, arguments: dict[str, Any], *, run_id: str,
               approved_by: str | None) -> MemoryOutcome:
    if memories is None:
        return _refused(tool, "agent memory is not set up in this process")
    try:
        if tool == prompts.RECALL_TOOL:
            return await _recall(memories, profile, profile_name, arguments)
        request = RememberRequest.parse(arguments)
        memory = await memories.remember(profile_name, request, run_id=run_id,
                                         approved_by=approved_by)
    except UserError as exc:
        return _refused(tool, str(exc))
    return MemoryOutcome(
        text=prompts.fence(tool, f"remembered as {memory.id}"),
        summary=f"{tool}: remembered {memory.id}",
        detail={"memory_id": memory.id, "fact": memory.fact, "tags": memory.tags,
                "expires_at": memory.expires_at, "approved_by": approved_by})


async def _recall(memories: Memories, profile: ProfileConfig, profile_name: str,
                  arguments: dict[str, Any]) -> MemoryOutcome:
    query = arguments.get("query")
    if not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY_CHARS:
        return _refused(prompts.RECALL_TOOL, f"query must be a non-empty string of at most "
                        f"{MAX_QUERY_CHARS} characters saying what to recall")
    found = await memories.recall(profile_name, query, max(profile.memory.recall_top_k, 5))
    return MemoryOutcome(text=prompts.recalled(found),
                         summary=f"{prompts.RECALL_TOOL}: {len(found)} found",
                         detail={"memory_ids": [m.id for m in found]})


def _refused(tool: str, why: str) -> MemoryOutcome:
    return MemoryOutcome(text=prompts.not_executed(tool, why), summary=f"{tool}: refused",
                         is_error=True, detail={"error": why})


async def notes(memories: Memories | None, profile: ProfileConfig, profile_name: str,
                goal: str) -> tuple[str | None, list[str], str | None]:
    """The goal's top memories for the run's start: (the message, their ids, an error)."""
    if memories is None:
        return None, [], "agent memory is not set up in this process"
    try:
        found = await memories.recall(profile_name, goal, profile.memory.recall_top_k)
    except UserError as exc:
        return None, [], str(exc)
    if not found:
        return None, [], None
    return prompts.memory_notes(found), [m.id for m in found], None
