"""The `knowledge:` section of servers.yaml: runbook collections and how they are embedded."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from orchestrator_mcp.config.base import Strict


class EmbedderSettings(Strict):
    provider: Literal["auto", "none", "local", "openai", "bedrock"] = Field(
        default="auto",
        description="auto: the local model when the `embeddings` extra is installed, else none "
        "(full-text search only)")
    model: str | None = Field(
        default=None,
        description="local: a sentence-transformers model name or path (default: the offline "
        "all-MiniLM-L6-v2 package); openai: an embeddings model (default "
        "text-embedding-3-small); bedrock: a Titan model id (default "
        "amazon.titan-embed-text-v2:0)")
    batch_size: int = Field(default=64, ge=1, le=2048)


class KnowledgeSettings(Strict):
    enabled: bool = True
    default_collection: str = Field(default="runbooks", pattern=r"^[A-Za-z0-9_-]{1,64}$")
    roots: list[Path] = Field(
        default_factory=lambda: [Path("runbooks")],
        description="folders index_folder may read from (relative to the config directory)")
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    chunk_chars: int = Field(default=1500, ge=200, le=20_000,
                             description="largest chunk, in characters")
    chunk_overlap: int = Field(default=200, ge=0, le=5000)
    max_document_bytes: int = Field(default=2 * 1024 * 1024, ge=1024,
                                    description="larger documents are refused")

    def resolved(self, base: Path | None) -> KnowledgeSettings:
        """A copy with relative roots made absolute against `base` (the config directory)."""
        base = (base or Path.cwd()).resolve()
        copy = self.model_copy(deep=True)
        copy.roots = [(p if p.is_absolute() else base / p).resolve() for p in copy.roots]
        return copy
