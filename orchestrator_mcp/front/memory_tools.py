"""Front tools over agent memory: list_memories (list and search) and forget.

What runs remember is given to later runs, so hosts can see every memory with where it came
from and delete the ones that are wrong or planted. Both need the admin scope over HTTP
(auth/scopes.py): memories are fed to models, and their facts came from tool output.
"""

from __future__ import annotations

from typing import Annotated

from fastmcp import FastMCP
from mcp_types import ToolAnnotations
from pydantic import Field

from orchestrator_mcp.front.scopes import caller_name
from orchestrator_mcp.memory import BadMemory, Memory
from orchestrator_mcp.memory.models import PROFILE, TAG
from orchestrator_mcp.runs.engine import RunEngine

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True,
                              idempotent_hint=True, open_world_hint=False)


def register_memory_tools(mcp: FastMCP, engine: RunEngine) -> None:
    @mcp.tool(annotations=READ_ONLY)
    async def list_memories(
        profile: Annotated[str | None, Field(pattern=PROFILE.pattern,
                                             description="only this profile's")] = None,
        query: Annotated[str | None, Field(
            min_length=1, max_length=2000,
            description="search: the memories most relevant to this text (needs profile)"
        )] = None,
        text: Annotated[str | None, Field(min_length=1, max_length=200,
                                          description="only facts containing this text")]
        = None,
        tag: Annotated[str | None, Field(pattern=TAG.pattern,
                                         description="only memories with this tag")] = None,
        limit: Annotated[int, Field(ge=1, le=500)] = 50,
    ) -> list[Memory]:
        """Agent memories (facts runs remembered for later runs) with their provenance:
        the run that learned each, when, who approved it, tags and expiry. Newest first,
        or by relevance with `query`."""
        memories = await engine.memories()
        if query is not None:
            if profile is None:
                raise BadMemory("query searches one profile's memories: give profile too")
            found = await memories.recall(profile, query, min(limit, 50))
            return [m for m in found if (tag is None or tag in m.tags)
                    and (text is None or text.lower() in m.fact.lower())]
        return await memories.list(profile=profile, tag=tag, text=text, limit=limit)

    @mcp.tool(annotations=DESTRUCTIVE)
    async def forget(
        memory_id: Annotated[str, Field(pattern=r"^mem_[0-9a-f]{20}$",
                                        description="the memory's id, from list_memories")],
    ) -> Memory:
        """Delete a memory, so no later run is given it. Returns what was deleted."""
        memories = await engine.memories()
        memory = await memories.forget(memory_id)
        await engine.record_audit([dict(kind="memory", caller=caller_name(), tool="forget",
                                        run_id=memory.run_id, outcome="forgotten",
                                        arguments={"memory_id": memory.id,
                                                   "fact": memory.fact})])
        return memory
