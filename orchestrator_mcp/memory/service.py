"""Memories: the table (truth) and its LanceDB index (recall), kept together.

The index is the knowledge part's `KnowledgeBase` with one collection, a document per
memory (id = the memory's id, metadata `profile`), so recall gets full-text search always
and hybrid search when `knowledge.embedder` is configured. Hits are checked against the
table, so a memory forgotten or expired is never recalled even if the index still has it.
A write is the table first, then the index; a write the index missed (a crash between
them) is made again when its run's step is replayed, or by importing again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from orchestrator_mcp.knowledge.models import KnowledgeError
from orchestrator_mcp.memory.models import BadMemory, Memory, MemoryNotFound, RememberRequest

if TYPE_CHECKING:
    from orchestrator_mcp.knowledge.store import KnowledgeBase
    from orchestrator_mcp.memory.store import MemoryStore  # imports SQLAlchemy

log = logging.getLogger(__name__)

COLLECTION = "memories"
MAX_QUERY_TERMS = 64  # a goal is up to 10,000 characters; recall needs its words
MAX_RECALL = 50
OVERFETCH = 4  # index hits per wanted memory: some may be expired or forgotten
LOCK_RETRY_SECONDS = 10.0  # another process writing the index (an import, a forget)


def query_terms(text: str) -> str:
    """Words of `text` for a full-text query, so no operator or quote reaches the parser;
    the first MAX_QUERY_TERMS distinct ones."""
    words = dict.fromkeys(w.lower() for w in re.findall(r"\w{1,40}", text[:20_000]))
    return " ".join(list(words)[:MAX_QUERY_TERMS])


def _indexed_text(memory: Memory) -> str:
    return f"{memory.fact}\n\ntags: {', '.join(memory.tags)}" if memory.tags else memory.fact


class Memories:
    def __init__(self, store: MemoryStore, index: KnowledgeBase) -> None:
        self.store = store
        self.index = index

    async def remember(self, profile: str, request: RememberRequest, *,
                       run_id: str | None, approved_by: str | None) -> Memory:
        memory = Memory.learned(profile, request, run_id=run_id, approved_by=approved_by)
        return await self.put(memory)

    async def put(self, memory: Memory) -> Memory:
        stored = await asyncio.to_thread(self.store.put, memory)
        await self._retrying(lambda: self.index.index_document(
            COLLECTION, stored.id, _indexed_text(stored), {"profile": stored.profile}))
        return stored

    async def recall(self, profile: str, query: str, limit: int) -> list[Memory]:
        """The profile's unexpired memories most relevant to `query`, best first."""
        if not 1 <= limit <= MAX_RECALL:
            raise BadMemory(f"limit must be 1-{MAX_RECALL}")
        terms = query_terms(query)
        if not terms:
            raise BadMemory("the query has no words: say what to recall, e.g. 'web-3 disk'")
        try:
            hits = await self.index.search(terms, COLLECTION, min(limit * OVERFETCH, 100),
                                           mode="auto", filters={"profile": profile})
        except KnowledgeError as exc:
            if "unknown collection" in str(exc):
                return []  # nothing remembered yet
            raise
        ids = list(dict.fromkeys(hit.document_id for hit in hits))
        live = await asyncio.to_thread(self.store.live_among, ids, profile)
        return [live[i] for i in ids if i in live][:limit]

    async def list(self, *, profile: str | None = None, tag: str | None = None,
                   text: str | None = None, limit: int = 50) -> list[Memory]:
        return await asyncio.to_thread(lambda: self.store.list(
            profile=profile, tag=tag, text=text, limit=limit))

    async def forget(self, memory_id: str) -> Memory:
        memory = await asyncio.to_thread(self.store.delete, memory_id)
        if memory is None:
            raise MemoryNotFound(f"no memory '{memory_id[:80]}'; list_memories shows their "
                                 "ids")
        await self._unindex([memory.id])
        return memory

    async def purge_expired(self) -> int:
        ids = await asyncio.to_thread(self.store.delete_expired)
        await self._unindex(ids)
        return len(ids)

    async def export(self, profile: str | None = None) -> AsyncIterator[list[Memory]]:
        batches = self.store.every(profile)
        while batch := await asyncio.to_thread(next, batches, None):
            yield batch

    async def _unindex(self, ids: list[str]) -> None:
        for memory_id in ids:
            try:
                await self._retrying(lambda i=memory_id: self.index.delete_document(
                    COLLECTION, i))
            except KnowledgeError:  # not indexed: nothing to drop (recall checks the table)
                pass

    async def _retrying(self, write: Any) -> Any:
        """A write to the index, waiting (bounded) while another process writes it: the
        knowledge base fails at once instead of queueing behind another process."""
        deadline = time.monotonic() + LOCK_RETRY_SECONDS
        while True:
            try:
                return await write()
            except KnowledgeError as exc:
                if "another process" not in str(exc) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
