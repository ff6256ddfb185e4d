"""Front tools for runbook knowledge: search, index, delete, list (see knowledge/server.py)."""

from __future__ import annotations

import json

from fastmcp import FastMCP

from orchestrator_mcp.knowledge.server import (
    DESTRUCTIVE,
    READ_ONLY,
    WRITES,
    delete_collection_tool,
    delete_document_tool,
    index_document_tool,
    index_folder_tool,
    list_collections_tool,
    search_tool,
)
from orchestrator_mcp.knowledge.store import KnowledgeBase


def register_knowledge_tools(mcp: FastMCP, kb: KnowledgeBase) -> None:
    mcp.tool(search_tool(kb), annotations=READ_ONLY)
    mcp.tool(list_collections_tool(kb), annotations=READ_ONLY)
    mcp.tool(index_document_tool(kb), annotations=WRITES)
    mcp.tool(index_folder_tool(kb), annotations=WRITES)
    mcp.tool(delete_document_tool(kb), annotations=DESTRUCTIVE)
    mcp.tool(delete_collection_tool(kb), annotations=DESTRUCTIVE)

    @mcp.resource("orchestrator://knowledge/collections", mime_type="application/json")
    async def collections_resource() -> str:
        """Indexed collections with their chunk and document counts and embedder."""
        infos = await kb.list_collections()
        return json.dumps([i.model_dump() for i in infos], indent=2)
