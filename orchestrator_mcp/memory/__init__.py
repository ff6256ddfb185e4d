"""Agent memory: facts a profile's runs learn about the environment and keep for later runs.

Rows in our database (`store.py`) are the truth, with provenance (run, time, approver),
tags and an optional expiry; a LanceDB collection (the knowledge part's `KnowledgeBase`)
indexes them for recall. Importing this package is light: LanceDB loads on first use.
"""

from orchestrator_mcp.memory.models import (
    BadMemory,
    Memory,
    MemoryNotFound,
    RememberRequest,
)
from orchestrator_mcp.memory.service import Memories

__all__ = ["BadMemory", "Memories", "Memory", "MemoryNotFound", "RememberRequest"]
