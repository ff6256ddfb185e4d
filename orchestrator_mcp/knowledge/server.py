"""Knowledge tools, defined once: the in-process `knowledge` server the gateway mounts (the
planner sees knowledge_search and knowledge_list_collections) and the front's tools for
hosts (front/knowledge_tools.py) register the same functions. All delegate to KnowledgeBase.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastmcp import FastMCP
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from orchestrator_mcp.knowledge.models import (
    CollectionInfo,
    IngestReport,
    MetadataValue,
    SearchHit,
    SearchMode,
)
from orchestrator_mcp.knowledge.store import MAX_LIMIT, KnowledgeBase

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
WRITES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=True,
                         open_world_hint=False)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True,
                              idempotent_hint=True, open_world_hint=False)
Collection = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$",
                                  description="collection name, e.g. 'runbooks'")]
Filters = Annotated[
    dict[str, MetadataValue] | None,
    Field(description="equality on metadata keys, plus 'source' (path prefix, e.g. "
          "'runbooks/disk') and 'document_id'; all must match")]


class Deleted(BaseModel):
    collection: str
    document_id: str | None = None
    chunks: int


def search_tool(kb: KnowledgeBase) -> Callable[..., Any]:
    async def search(
        query: Annotated[str, Field(min_length=1, max_length=2000,
                                    description="what to look for, e.g. 'disk is full'")],
        collection: Collection = kb.settings.default_collection,
        limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 5,
        mode: Annotated[SearchMode, Field(description="auto: hybrid when the collection "
                                          "has vectors, else fts")] = "auto",
        filters: Filters = None,
    ) -> list[SearchHit]:
        """Search runbooks and other indexed documents: full-text (fts), semantic (vector)
        or both (hybrid). Each hit gives its source file, lines, heading path and text."""
        return await kb.search(query, collection, limit, mode, filters)

    return search


def list_collections_tool(kb: KnowledgeBase) -> Callable[..., Any]:
    async def list_collections() -> list[CollectionInfo]:
        """Indexed collections: chunk and document counts, embedder and search modes."""
        return await kb.list_collections()

    return list_collections


def index_document_tool(kb: KnowledgeBase) -> Callable[..., Any]:
    async def index_document(
        collection: Collection,
        id: Annotated[str, Field(min_length=1, max_length=512,
                                 description="document id; indexing the same id replaces it")],
        text: Annotated[str, Field(min_length=1, description="Markdown or plain text")],
        metadata: Annotated[dict[str, MetadataValue] | None,
                            "string/number/boolean values to filter on"] = None,
    ) -> IngestReport:
        """Add or replace one document in a collection (created if missing)."""
        return await kb.index_document(collection, id, text, metadata)

    return index_document


def index_folder_tool(kb: KnowledgeBase) -> Callable[..., Any]:
    async def index_folder(
        path: Annotated[str, Field(min_length=1, description="a folder under the configured "
                                   "knowledge roots (absolute, or relative to a root)")],
        collection: Collection = kb.settings.default_collection,
    ) -> IngestReport:
        """Index the Markdown and text files of a folder; incremental: unchanged files are
        skipped, changed ones replaced, deleted ones removed."""
        return await kb.index_folder(path, collection)

    return index_folder


def delete_document_tool(kb: KnowledgeBase) -> Callable[..., Any]:
    async def delete_document(collection: Collection,
                              id: Annotated[str, Field(min_length=1, max_length=512)]
                              ) -> Deleted:
        """Remove one document (all its chunks) from a collection."""
        chunks = await kb.delete_document(collection, id)
        return Deleted(collection=collection, document_id=id, chunks=chunks)

    return delete_document


def delete_collection_tool(kb: KnowledgeBase) -> Callable[..., Any]:
    async def delete_collection(name: Collection) -> Deleted:
        """Drop a whole collection and its index."""
        info = await kb.delete_collection(name)
        return Deleted(collection=name, chunks=info.chunks)

    return delete_collection


def build(kb: KnowledgeBase) -> FastMCP:
    """The in-process `knowledge` server for the planner: search only, nothing that writes."""
    from orchestrator_mcp.front.errors import UserErrors

    mcp = FastMCP("knowledge", instructions="Search the indexed runbooks before acting: they "
                  "hold the checks and fixes operators agreed on.", middleware=[UserErrors()])
    mcp.tool(search_tool(kb), annotations=READ_ONLY)
    mcp.tool(list_collections_tool(kb), annotations=READ_ONLY)
    return mcp
