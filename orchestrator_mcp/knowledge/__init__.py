"""Runbook knowledge: LanceDB collections, chunking, embedders, full-text/vector/hybrid search.

Importing this package is light: lancedb, pyarrow and any embedding model load on first use,
in worker threads.
"""

from orchestrator_mcp.knowledge.models import (
    CollectionInfo,
    IngestReport,
    KnowledgeError,
    SearchHit,
)
from orchestrator_mcp.knowledge.store import KnowledgeBase

__all__ = ["CollectionInfo", "IngestReport", "KnowledgeBase", "KnowledgeError", "SearchHit"]
