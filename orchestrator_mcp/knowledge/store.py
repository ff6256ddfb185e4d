"""KnowledgeBase: runbook collections on LanceDB with full-text, vector and hybrid search.

Writes to a collection are serialized twice: an asyncio.Lock per collection queues writers
of this process, and an exclusive flock on `<dir>/.<collection>.lock` keeps other processes
out. A writer that finds the file lock taken does not wait: it fails at once with "an
ingest of collection X is already running in another process" (a terminal `index` and a
server must not interleave; retrying later is cheap because ingest is incremental).
Readers never lock: every commit is atomic, searches see the last committed version.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from orchestrator_mcp.config.knowledge import KnowledgeSettings
from orchestrator_mcp.knowledge import tables
from orchestrator_mcp.knowledge.embedders import Embedder, make_embedder
from orchestrator_mcp.knowledge.filters import (
    check_collection,
    check_document_id,
    check_metadata,
    in_list,
    literal,
    where_clause,
)
from orchestrator_mcp.knowledge.ingest import (
    SourceDocument,
    check_text,
    chunk_rows,
    resolve_folder,
    scan_folder,
)
from orchestrator_mcp.knowledge.models import (
    CollectionInfo,
    EmbedderInfo,
    IngestReport,
    KnowledgeError,
    SearchHit,
    SearchMode,
    SkippedFile,
)

_UNSET: Any = object()
MAX_LIMIT = 100
_GROUP = 2048  # chunks embedded and turned into Arrow at a time
_DOCUMENTS_PER_HOP = 32  # documents chunked per worker-thread hop


class KnowledgeBase:
    def __init__(self, directory: Path, settings: KnowledgeSettings,
                 embedder: Embedder | None = _UNSET) -> None:
        """`embedder`: override the configured one (None: full-text only)."""
        self.directory = Path(directory)
        self.settings = settings
        self.embedder = make_embedder(settings.embedder) if embedder is _UNSET else embedder
        self._db: Any = None
        self._db_lock = threading.Lock()
        self._locks: dict[str, asyncio.Lock] = {}

    @property
    def configured(self) -> EmbedderInfo:
        return self.embedder.info if self.embedder else EmbedderInfo(provider="none")

    def _connect(self) -> Any:
        with self._db_lock:
            if self._db is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._db = tables.connect(str(self.directory))
            return self._db

    def _table(self, name: str) -> Any:
        db = self._connect()
        table = tables.open_table(db, check_collection(name))
        if table is None:
            known = ", ".join(tables.table_names(db)) or "none yet"
            raise KnowledgeError(f"unknown collection '{name}'; collections: {known} "
                                 f"(create one with `orchestrator-mcp index PATH "
                                 f"--collection {name}` or index_document)")
        return table

    # -- reading -------------------------------------------------------------------------

    def _info(self, name: str) -> CollectionInfo:
        table = self._table(name)
        recorded = tables.embedder_of(table)
        modes = ["fts", "vector", "hybrid"] if recorded.dimension else ["fts"]
        return CollectionInfo(name=name, chunks=table.count_rows(),
                              documents=tables.count_documents(table),
                              embedder=recorded.name, dimension=recorded.dimension,
                              modes=modes)

    async def collection(self, name: str) -> CollectionInfo:
        return await asyncio.to_thread(self._info, name)

    async def list_collections(self) -> list[CollectionInfo]:
        def run() -> list[CollectionInfo]:
            infos = []
            for name in tables.table_names(self._connect()):
                with contextlib.suppress(KnowledgeError):  # dropped meanwhile
                    infos.append(self._info(name))
            return infos

        return await asyncio.to_thread(run)

    async def search(self, query: str, collection: str | None = None, limit: int = 5,
                     mode: SearchMode = "auto",
                     filters: dict[str, Any] | None = None) -> list[SearchHit]:
        name = check_collection(collection or self.settings.default_collection)
        if not query or not query.strip():
            raise KnowledgeError("the query is empty: say what to look for, e.g. 'disk full'")
        if not 1 <= limit <= MAX_LIMIT:
            raise KnowledgeError(f"limit must be 1-{MAX_LIMIT}")
        where = where_clause(filters)
        text = query.strip()

        def plan() -> tuple[Any, str, list[dict[str, Any]] | None]:
            """One thread hop for full-text search: open, choose the mode, search."""
            table = self._table(name)
            chosen = self._mode(name, mode, tables.embedder_of(table))
            rows = tables.search(table, chosen, text, None, where, limit) \
                if chosen == "fts" else None
            return table, chosen, rows

        table, chosen, rows = await asyncio.to_thread(plan)
        if rows is None:
            assert self.embedder is not None
            vector = (await self.embedder.embed([text]))[0]
            rows = await asyncio.to_thread(tables.search, table, chosen, text, vector, where,
                                           limit)
        return [SearchHit(score=tables.score(chosen, row), match=chosen, collection=name,
                          document_id=row["doc_id"], source=row["source"] or "",
                          heading=row["heading"] or "", start_line=row["start_line"],
                          end_line=row["end_line"], text=row["text"],
                          metadata=json.loads(row["metadata"] or "{}"))
                for row in rows]

    def _mode(self, name: str, mode: SearchMode, recorded: EmbedderInfo) -> str:
        usable = bool(recorded.dimension) and self.embedder is not None \
            and recorded.same_as(self.configured)
        if mode == "auto":
            return "hybrid" if usable else "fts"
        if mode != "fts" and not recorded.dimension:
            raise KnowledgeError(
                f"collection '{name}' has no vectors (it was indexed without an embedder), "
                f"so {mode} search is impossible: use mode 'fts', or configure "
                "knowledge.embedder in servers.yaml (provider local, openai or bedrock) "
                f"and re-index with `orchestrator-mcp index PATH --collection {name} "
                "--reindex`")
        if mode != "fts" and not usable:
            raise self._mismatch(name, recorded)
        return mode

    def _mismatch(self, name: str, recorded: EmbedderInfo) -> KnowledgeError:
        return KnowledgeError(
            f"collection '{name}' was indexed with {recorded.name}; the configured embedder "
            f"is {self.configured.name} — fix: re-index with `orchestrator-mcp index PATH "
            f"--collection {name} --reindex` (or configure knowledge.embedder to match)")

    # -- writing -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _writing(self, name: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            with self._file_lock(name):
                yield

    @contextlib.contextmanager
    def _file_lock(self, name: str) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / f".{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise KnowledgeError(
                    f"an ingest of collection '{name}' is already running in another process;"
                    " try again when it has finished") from None
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            yield
        finally:
            os.close(fd)  # closing releases the flock

    async def index_document(self, collection: str, doc_id: str, text: str,
                             metadata: dict[str, Any] | None = None) -> IngestReport:
        name = check_collection(collection)
        check_document_id(doc_id)
        check_text(text, self.settings.max_document_bytes, f"document '{doc_id[:80]}'")
        document = SourceDocument(doc_id=doc_id, source=doc_id, text=text, markdown=True,
                                  metadata=check_metadata(metadata))
        return await self._ingest(name, [document], [], f"doc_id = {literal(doc_id)}",
                                  reindex=False)

    async def index_folder(self, path: str | Path, collection: str | None = None, *,
                           reindex: bool = False, confined: bool = True) -> IngestReport:
        """Index .md/.markdown/.txt files under `path`: only changed files are re-chunked,
        files gone since the last ingest of this folder are removed. `confined`: the
        folder must lie under settings.roots (calls from hosts); the terminal passes False.
        `reindex`: rebuild the whole collection from this folder (with the configured
        embedder)."""
        name = check_collection(collection or self.settings.default_collection)
        roots = self.settings.roots if confined else None
        folder = await asyncio.to_thread(resolve_folder, path, roots)
        documents, skipped = await asyncio.to_thread(
            scan_folder, folder, confined, self.settings.max_document_bytes)
        return await self._ingest(name, documents, skipped, f"root = {literal(str(folder))}",
                                  reindex=reindex)

    async def _ingest(self, name: str, documents: list[SourceDocument],
                      skipped: list[SkippedFile], scope: str, *, reindex: bool) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport(collection=name, skipped=skipped, embedder=self.configured.name)
        async with self._writing(name):
            db = await asyncio.to_thread(self._connect)
            table = await asyncio.to_thread(tables.open_table, db, name)
            known: dict[str, str] = {}
            if table is not None and not reindex:
                recorded = tables.embedder_of(table)
                if not recorded.same_as(self.configured):
                    raise self._mismatch(name, recorded)
                known = await asyncio.to_thread(tables.documents, table, scope)
            changed = [d for d in documents if known.get(d.doc_id) != d.content_hash]
            present = {d.doc_id for d in documents}
            removed = [doc_id for doc_id in known if doc_id not in present]
            report.added_files = sum(1 for d in changed if d.doc_id not in known)
            report.updated_files = len(changed) - report.added_files
            report.unchanged_files = len(documents) - len(changed)
            report.removed_files = len(removed)
            if changed or removed or reindex:
                # A box, so that the writing thread holds the only reference to the data
                # and lets it go before building the indexes (see _write).
                box = [await self._rows(changed if not reindex else documents)]
                report.chunks_written = box[0].num_rows
                touched = [d.doc_id for d in changed] + removed
                report.chunks_removed = await self._write(db, name, table, box, touched,
                                                          reindex)
            table = await asyncio.to_thread(tables.open_table, db, name)
            report.total_chunks = await asyncio.to_thread(table.count_rows) if table else 0
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    async def _rows(self, documents: list[SourceDocument]) -> Any:
        """The chunks of `documents` as one Arrow table (with their vectors). Documents are
        chunked in worker threads and turned into Arrow _GROUP chunks at a time, so Python
        row dicts never pile up (100k chunks as dicts: ≈300 MB more at the peak)."""
        import pyarrow as pa

        # The worker threads put their results into these lists rather than return them:
        # asyncio keeps the last results of to_thread referenced for a while.
        parts: list[Any] = []
        pending: list[dict[str, Any]] = []
        for start in range(0, len(documents), _DOCUMENTS_PER_HOP):
            await asyncio.to_thread(self._chunk, documents[start:start + _DOCUMENTS_PER_HOP],
                                    pending)
            if len(pending) >= _GROUP or start + _DOCUMENTS_PER_HOP >= len(documents):
                vectors = await self._vectors(pending) if self.embedder and pending else None
                await asyncio.to_thread(self._arrow, pending, vectors, parts)
                pending.clear()
        if not parts:
            await asyncio.to_thread(self._arrow, [], None, parts)
        return pa.concat_tables(parts)

    def _chunk(self, documents: list[SourceDocument], into: list[dict[str, Any]]) -> None:
        for document in documents:
            into += chunk_rows(document, self.settings.chunk_chars, self.settings.chunk_overlap)

    def _arrow(self, rows: list[dict[str, Any]], vectors: Any, into: list[Any]) -> None:
        into.append(tables.arrow(rows, self.configured, vectors))

    async def _vectors(self, rows: list[dict[str, Any]]) -> Any:
        """One float32 array, a row per chunk. Texts of similar length share a batch (less
        padding for a local model); batches let searches interleave."""
        import numpy as np

        assert self.embedder is not None
        order = sorted(range(len(rows)), key=lambda n: len(rows[n]["content"]))
        step = self.settings.embedder.batch_size
        out: Any = None
        for start in range(0, len(order), step):
            batch = order[start:start + step]
            try:
                vectors = np.asarray(await self.embedder.embed(
                    [rows[n]["content"] for n in batch]), dtype=np.float32)
                if out is None:
                    out = np.empty((len(rows), vectors.shape[1]), dtype=np.float32)
                out[batch] = vectors
            except (ValueError, IndexError) as exc:
                raise KnowledgeError(f"the embedder {self.configured.name} returned vectors "
                                     f"that do not fit ({exc}): one vector of the same size "
                                     "per text was expected") from None
        return out

    async def _write(self, db: Any, name: str, table: Any, box: list[Any],
                     touched: list[str], reindex: bool) -> int:
        """Write the Arrow data in `box` (emptied), then bring the indexes up to date;
        returns how many chunks went. The data (≈300 MB at 100k chunks) is dropped before
        the indexes are built, the peak of an ingest's memory."""
        def run() -> int:
            data = box.pop()
            before = table.count_rows() if table is not None else 0
            delete = in_list("doc_id", touched) if touched else None
            written, created = tables.write(db, name, data, self.configured,
                                            delete_where=delete, replace_all=reindex)
            added = data.num_rows
            del data
            if written is None:
                return before
            if added:
                tables.index(written, created)
            return before + added - written.count_rows()

        return await asyncio.to_thread(run)

    async def delete_document(self, collection: str, doc_id: str) -> int:
        """Remove a document's chunks; returns how many."""
        name = check_collection(collection)
        where = f"doc_id = {literal(check_document_id(doc_id))}"
        async with self._writing(name):
            table = await asyncio.to_thread(self._table, name)
            count = await asyncio.to_thread(table.count_rows, where)
            if not count:
                raise KnowledgeError(f"no document '{doc_id}' in collection '{name}' (document "
                                     "ids are shown in search results)")
            await asyncio.to_thread(table.delete, where)
        return count

    async def delete_collection(self, name: str) -> CollectionInfo:
        """Drop a collection; returns what it held."""
        async with self._writing(check_collection(name)):
            info = await self.collection(name)
            await asyncio.to_thread(self._connect().drop_table, name)
        return info

    async def warm_up(self) -> None:
        """Load the embedding model now rather than on the first search."""
        if self.embedder is not None:
            await self.embedder.embed(["warm up"])
