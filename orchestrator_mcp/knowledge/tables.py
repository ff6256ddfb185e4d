"""LanceDB operations on one collection table. Blocking: call these in a worker thread.

A collection is one table: a row per chunk, with the document's content hash (for
incremental ingest) and, when an embedder is configured, a `vector` column. The embedder
that made the vectors is recorded in the table's schema metadata. Every change is a single
LanceDB commit (create, merge-insert with delete, or delete), so a failed ingest leaves the
previous version of the table in place and searchable.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from orchestrator_mcp.knowledge.models import EmbedderInfo, KnowledgeError

EMBEDDER_KEY = b"orchestrator.embedder"
RESULT_COLUMNS = ["id", "doc_id", "source", "heading", "start_line", "end_line", "text",
                  "metadata"]


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
    except ValueError:
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


def _index(table: Any, created: bool) -> None:
    """Keep the full-text index current: build it on a new table, else fold new rows in."""
    from lancedb.index import FTS

    if created or not any(i.index_type == "FTS" for i in table.list_indices()):
        table.create_index("content", config=FTS(), replace=True)
    else:
        table.optimize()


def write(db: Any, name: str, rows: list[dict[str, Any]], embedder: EmbedderInfo, *,
          delete_where: str | None, replace_all: bool) -> Any:
    """One commit: insert/replace `rows` and delete the rows matching `delete_where` that
    were not rewritten (or every other row with `replace_all`). Returns the table."""
    import pyarrow as pa

    wanted = schema(embedder)
    data = pa.Table.from_pylist(rows, schema=wanted)
    table = open_table(db, name)
    if table is None or (replace_all and table.schema != wanted):
        if not rows:
            if table is not None:
                db.drop_table(name)
            return None
        table = db.create_table(name, data, mode="overwrite")
        _index(table, created=True)
        return table
    if not rows:
        if replace_all:
            table.delete("true")
        elif delete_where:
            table.delete(delete_where)
        return table
    merge = (table.merge_insert("id").when_matched_update_all()
             .when_not_matched_insert_all())
    if replace_all:
        merge = merge.when_not_matched_by_source_delete()
    elif delete_where:
        merge = merge.when_not_matched_by_source_delete(delete_where)
    merge.execute(data)
    _index(table, created=False)
    return table


def search(table: Any, mode: str, query: str, vector: list[float] | None,
           where: str | None, limit: int) -> list[dict[str, Any]]:
    if mode == "fts":
        builder = table.search(query, query_type="fts", fts_columns="content")
        columns = [*RESULT_COLUMNS, "_score"]
    elif mode == "vector":
        builder = table.search(vector, vector_column_name="vector").distance_type("cosine")
        columns = [*RESULT_COLUMNS, "_distance"]
    else:
        builder = (table.search(query_type="hybrid", vector_column_name="vector",
                                fts_columns="content")
                   .vector(vector).text(query).distance_type("cosine"))
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
