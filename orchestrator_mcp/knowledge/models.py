"""What the knowledge base hands out: search hits, collection facts, ingest reports."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from orchestrator_mcp.errors import UserError

SearchMode = Literal["auto", "fts", "vector", "hybrid"]
MetadataValue = str | int | float | bool


class KnowledgeError(UserError):
    """Bad input or a state the caller can fix; the message says what and how."""


class SearchHit(BaseModel):
    score: float = Field(description="higher is better; the scale depends on `match` "
                         "(BM25 for fts, cosine similarity for vector, RRF for hybrid)")
    match: Literal["fts", "vector", "hybrid"]
    collection: str
    document_id: str
    source: str = Field(description="file the chunk came from (relative to the indexed "
                        "folder's parent), or the document id")
    heading: str = Field(description="heading path, e.g. 'Disk full > Checks'")
    start_line: int
    end_line: int
    text: str
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)


class EmbedderInfo(BaseModel):
    provider: Literal["none", "local", "openai", "bedrock"]
    model: str | None = None
    dimension: int | None = None

    @property
    def name(self) -> str:
        return "none (full-text only)" if self.provider == "none" else \
            f"{self.provider}:{self.model}"

    def same_as(self, other: EmbedderInfo) -> bool:
        return self.provider == other.provider and self.model == other.model


class CollectionInfo(BaseModel):
    name: str
    chunks: int
    documents: int
    embedder: str = Field(description="what its vectors were made with")
    dimension: int | None = Field(description="vector size, None without vectors")
    modes: list[str] = Field(description="search modes this collection supports")


class SkippedFile(BaseModel):
    path: str
    reason: str


class IngestReport(BaseModel):
    collection: str
    added_files: int = 0
    updated_files: int = 0
    unchanged_files: int = 0
    removed_files: int = 0
    chunks_written: int = Field(default=0, description="chunks of added and updated files")
    chunks_removed: int = 0
    total_chunks: int = Field(default=0, description="chunks in the collection afterwards")
    skipped: list[SkippedFile] = Field(default_factory=list)
    embedder: str = "none (full-text only)"
    seconds: float = 0.0
