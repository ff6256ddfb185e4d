"""Reading documents: folders under the allowed roots, files, hashes, chunk rows."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator_mcp.knowledge.chunking import chunk_document
from orchestrator_mcp.knowledge.filters import tokens
from orchestrator_mcp.knowledge.models import KnowledgeError, MetadataValue, SkippedFile

MARKDOWN = (".md", ".markdown")
SUFFIXES = (*MARKDOWN, ".txt")


@dataclass
class SourceDocument:
    doc_id: str
    source: str
    text: str
    markdown: bool
    root: str = ""
    metadata: dict[str, MetadataValue] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        payload = json.dumps([self.text, self.metadata, self.source], sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()


def check_text(text: str, max_bytes: int, what: str) -> None:
    if not text.strip():
        raise KnowledgeError(f"{what} is empty (or only whitespace): nothing to index")
    size = len(text.encode())
    if size > max_bytes:
        raise KnowledgeError(f"{what} is {size} bytes, more than knowledge.max_document_bytes "
                             f"({max_bytes}); split it or raise the limit in servers.yaml")


def resolve_folder(path: str | Path, roots: list[Path] | None) -> Path:
    """The folder to index. With `roots` (calls from hosts) it must lie inside one of them
    after resolving '..' and symlinks; a relative path is taken relative to each root (or
    to a root's parent when it starts with the root's name, like 'runbooks/db')."""
    given = Path(path).expanduser()
    if roots is None:
        candidates = [given]
    elif given.is_absolute():
        candidates = [given]
    else:
        candidates = [(r.parent if given.parts and given.parts[0] == r.name else r) / given
                      for r in roots]
    for candidate in candidates:
        folder = candidate.resolve()
        if roots is not None and not any(folder.is_relative_to(r.resolve()) for r in roots):
            continue
        if folder.is_dir():
            return folder
        if roots is None or folder.exists():
            raise KnowledgeError(f"{folder} is not a folder")
    if roots is None:
        raise KnowledgeError(f"no folder {given}")
    allowed = ", ".join(str(r) for r in roots) or "none configured"
    raise KnowledgeError(f"{str(path)!r} is not a folder under the knowledge roots ({allowed});"
                         " add its folder to knowledge.roots in servers.yaml, or index it "
                         "from a terminal with `orchestrator-mcp index PATH`")


def scan_folder(folder: Path, confined: bool, max_bytes: int
                ) -> tuple[list[SourceDocument], list[SkippedFile]]:
    """Markdown and text files under `folder` (hidden entries skipped). When `confined`,
    files whose real path leaves the folder (symlinks) are skipped."""
    documents: list[SourceDocument] = []
    skipped: list[SkippedFile] = []
    base = folder.parent
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(directory) / name
            if name.startswith(".") or path.suffix.lower() not in SUFFIXES:
                continue
            shown = path.relative_to(base).as_posix()
            real = path.resolve()
            if confined and not real.is_relative_to(folder):
                skipped.append(SkippedFile(path=shown, reason="symlink out of the folder"))
                continue
            try:
                if real.stat().st_size > max_bytes:
                    raise KnowledgeError(f"larger than max_document_bytes ({max_bytes})")
                text = real.read_bytes().decode("utf-8")
                check_text(text, max_bytes, "the file")
            except (OSError, UnicodeDecodeError, KnowledgeError) as exc:
                reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc)
                skipped.append(SkippedFile(path=shown, reason=reason))
                continue
            documents.append(SourceDocument(
                doc_id=str(path), source=shown, text=text, root=str(folder),
                markdown=path.suffix.lower() in MARKDOWN))
    return documents, skipped


def chunk_rows(document: SourceDocument, chunk_chars: int, overlap: int) -> list[dict[str, Any]]:
    """Table rows for a document's chunks, without vectors."""
    chunks = chunk_document(document.text, markdown=document.markdown,
                            chunk_chars=chunk_chars, overlap=overlap)
    digest = document.content_hash
    metadata = json.dumps(document.metadata)
    meta = tokens(document.metadata)
    return [{
        "id": f"{document.doc_id}#{n}",
        "doc_id": document.doc_id,
        "root": document.root,
        "source": document.source,
        "heading": chunk.heading,
        "start_line": chunk.start_line,
        "end_line": chunk.end_line,
        "text": chunk.text,
        "content": f"{chunk.heading}\n{chunk.text}" if chunk.heading else chunk.text,
        "content_hash": digest,
        "metadata": metadata,
        "meta": meta,
    } for n, chunk in enumerate(chunks)]
