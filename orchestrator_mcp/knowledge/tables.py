"""LanceDB operations on one collection table. Blocking: call these in a worker thread.

A collection is one table: a row per chunk, with the document's content hash (for
incremental ingest) and, when an embedder is configured, a `vector` column. The embedder
that made the vectors is recorded in the table's schema metadata. Every change is a single
LanceDB commit (create, merge-insert with delete, or delete), so a failed ingest leaves the
previous version of the table in place and searchable.

A table of at least ANN_MIN_ROWS rows with vectors gets an IVF_SQ vector index (cosine).
It is cheap to build (0.05 s at 10k rows, ≈2.5 s at 100k on 2 cores) and halves a vector
search at 10k rows (7.4 -> 3.9 ms) where a flat scan grows ≈1.1 ms per 1,000 rows (110 ms
at 100k, against ≈5 ms indexed); refining the candidates with the full vectors
(ANN_REFINE) gave the flat scan's top 10 on every labeled query of bench/rag.py. Later
ingests fold their rows into the index (`optimize`); it is trained anew only once the table
has grown ANN_RETRAIN_GROWTH-fold since it was trained (the trained row count is in the
index name: `vector_ann_100000`).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from orchestrator_mcp.knowledge.models import EmbedderInfo, KnowledgeError

EMBEDDER_KEY = b"orchestrator.embedder"
RESULT_COLUMNS = ["id", "doc_id", "source", "heading", "start_line", "end_line", "text",
                  "metadata"]
ANN_MIN_ROWS = 10_000
ANN_RETRAIN_GROWTH = 2.0
ANN_PREFIX = "vector_ann_"
ANN_NPROBES = 20  # IVF partitions searched per query (of ≈ sqrt(rows))
ANN_REFINE = 5  # re-rank limit × 5 candidates with the full vectors


def connect(directory: str) -> Any:
    os.environ.setdefault("LANCEDB_LOG", "error")  # no scanner deprecation chatter on stderr
    import lancedb

    # Strong consistency: every read sees commits of other processes (≈0.1 ms a query).
    return lancedb.connect(directory, read_consistency_interval=timedelta(0))


def schema(embedder: EmbedderInfo) -> Any:
    import pyarrow as pa

    fields = [
        pa.field("id", pa.string(), nullable=False),
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("root", pa.string()),
        pa.field("source", pa.string()),
        pa.field("heading", pa.string()),
        pa.field("start_line", pa.int32()),
        pa.field("end_line", pa.int32()),
        pa.field("text", pa.string()),
        pa.field("content", pa.string()),
        pa.field("content_hash", pa.string()),
        pa.field("metadata", pa.string()),
        pa.field("meta", pa.list_(pa.string())),
    ]
    if embedder.dimension:
        fields.append(pa.field("vector", pa.list_(pa.float32(), embedder.dimension)))
    return pa.schema(fields, metadata={EMBEDDER_KEY: embedder.model_dump_json().encode()})


def table_names(db: Any) -> list[str]:
    names: list[str] = []
    token: str | None = None
    while True:
        page = db.list_tables(page_token=token, limit=1000)
        names.extend(page.tables)
        token = page.page_token
        if not token or not page.tables:
            return sorted(names)


def open_table(db: Any, name: str) -> Any | None:
    try:
        return db.open_table(name)
    except ValueError as missing:
        # LanceDB's future keeps this exception in a reference cycle; without its traceback
        # it cannot keep the caller's frames alive (`write`: the whole ingest's Arrow data).
        missing.__traceback__ = None
        return None


def embedder_of(table: Any) -> EmbedderInfo:
    raw = (table.schema.metadata or {}).get(EMBEDDER_KEY)
    return EmbedderInfo.model_validate_json(raw) if raw else EmbedderInfo(provider="none")


def documents(table: Any, where: str | None) -> dict[str, str]:
    """doc_id -> content hash, for the documents matching `where`."""
    query = table.search().select(["doc_id", "content_hash"]).limit(None)
    if where:
        query = query.where(where)
    data = query.to_arrow()
    return dict(zip(data.column("doc_id").to_pylist(), data.column("content_hash").to_pylist(),
                    strict=True))


def count_documents(table: Any) -> int:
    import pyarrow.compute as pc

    data = table.search().select(["doc_id"]).limit(None).to_arrow()
    return len(pc.unique(data.column("doc_id"))) if data.num_rows else 0


def index(table: Any, created: bool) -> None:
    """Bring the indexes up to date after `write` put rows in: build the full-text index on
    a new table, else fold the new rows into the existing indexes; then the vector index
    (see the module docstring)."""
    import pyarrow as pa

    # The written Arrow data is gone by now (store drops it): hand its pages back to the OS
    # before index building, the peak of an ingest (100k chunks: ≈300 MB less).
    pa.default_memory_pool().release_unused()
    _fts_index(table, created)
    _vector_index(table)


def _fts_index(table: Any, created: bool) -> None:
    from lancedb.index import FTS

    if created or not any(i.index_type == "FTS" for i in table.list_indices()):
        table.create_index("content", config=FTS(), replace=True)
    else:
        table.optimize()  # folds new rows into every index, the vector index too


def ann_index(table: Any) -> tuple[str, int] | None:
    """The vector index (name, rows it was trained on), if the table has one."""
    for index in table.list_indices():
        if index.name.startswith(ANN_PREFIX) and index.name[len(ANN_PREFIX):].isdigit():
            return index.name, int(index.name[len(ANN_PREFIX):])
    return None


def _vector_index(table: Any) -> None:
    """Build the ANN index once the table is large enough, retrain it once it has grown
    ANN_RETRAIN_GROWTH-fold since (see the module docstring)."""
    if "vector" not in table.schema.names:
        return
    rows = table.count_rows()
    current = ann_index(table)
    if rows < ANN_MIN_ROWS or (current and rows < current[1] * ANN_RETRAIN_GROWTH):
        return
    from lancedb.index import IvfSq

    table.create_index("vector", config=IvfSq(distance_type="cosine"),
                       name=f"{ANN_PREFIX}{rows}", replace=True)
    if current:  # indexes of other names on the same column are kept: drop the old one
        table.drop_index(current[0])


def arrow(rows: list[dict[str, Any]], embedder: EmbedderInfo, vectors: Any = None) -> Any:
    """Chunk rows as an Arrow table of the collection's schema; `vectors` (one float32 array,
    a row per chunk) fill the vector column when the embedder has a dimension."""
    import numpy as np
    import pyarrow as pa

    wanted = schema(embedder)
    if "vector" not in wanted.names:
        return pa.Table.from_pylist(rows, schema=wanted)
    dimension = wanted.field("vector").type.list_size
    block = np.zeros((0, dimension), dtype=np.float32) if vectors is None else vectors
    if block.shape != (len(rows), dimension):
        raise KnowledgeError(f"the embedder returned vectors of shape {block.shape} for "
                             f"{len(rows)} chunks; this collection holds {dimension}-dimension "
                             "vectors: re-index it with --reindex after changing the embedder")
    plain = pa.schema([f for f in wanted if f.name != "vector"])
    data = pa.Table.from_pylist(rows, schema=plain)
    column = pa.FixedSizeListArray.from_arrays(
        pa.array(np.ascontiguousarray(block, dtype=np.float32).reshape(-1)), dimension)
    return data.append_column(wanted.field("vector"), column).replace_schema_metadata(
        wanted.metadata)


def write(db: Any, name: str, data: Any, embedder: EmbedderInfo, *,
          delete_where: str | None, replace_all: bool) -> tuple[Any, bool]:
    """One commit: insert/replace the rows of `data` (an Arrow table from `arrow`) and
    delete the rows matching `delete_where` that were not rewritten (or every other row
    with `replace_all`). Returns the table (None once dropped) and whether it was created
    anew; when rows were written, call `index` next (the caller can let go of `data` first:
    index building is the peak of an ingest's memory)."""
    wanted = schema(embedder)
    table = open_table(db, name)
    if table is None or (replace_all and table.schema != wanted):
        if not data.num_rows:
            if table is not None:
                db.drop_table(name)
            return None, False
        return db.create_table(name, data, mode="overwrite"), True
    if not data.num_rows:
        if replace_all:
            table.delete("true")
        elif delete_where:
            table.delete(delete_where)
        return table, False
    merge = (table.merge_insert("id").when_matched_update_all()
             .when_not_matched_insert_all())
    if replace_all:
        merge = merge.when_not_matched_by_source_delete()
    elif delete_where:
        merge = merge.when_not_matched_by_source_delete(delete_where)
    merge.execute(data)
    return table, False


def search(table: Any, mode: str, query: str, vector: list[float] | None,
           where: str | None, limit: int) -> list[dict[str, Any]]:
    if mode == "fts":
        builder = table.search(query, query_type="fts", fts_columns="content")
        columns = [*RESULT_COLUMNS, "_score"]
    elif mode == "vector":
        builder = (table.search(vector, vector_column_name="vector").distance_type("cosine")
                   .nprobes(ANN_NPROBES).refine_factor(ANN_REFINE))
        columns = [*RESULT_COLUMNS, "_distance"]
    else:
        builder = (table.search(query_type="hybrid", vector_column_name="vector",
                                fts_columns="content")
                   .vector(vector).text(query).distance_type("cosine")
                   .nprobes(ANN_NPROBES).refine_factor(ANN_REFINE))
        columns = RESULT_COLUMNS
    if where:
        builder = builder.where(where, prefilter=True)
    try:
        return builder.select(columns).limit(limit).to_list()
    except ValueError as exc:
        if "INVERTED index" in str(exc):
            raise KnowledgeError("the collection has no full-text index (an ingest was "
                                 "interrupted?): re-index it with --reindex") from None
        raise


def score(mode: str, row: dict[str, Any]) -> float:
    if mode == "fts":
        return float(row.get("_score") or 0.0)
    if mode == "vector":
        return 1.0 - float(row.get("_distance") or 0.0)
    return float(row.get("_relevance_score") or 0.0)
