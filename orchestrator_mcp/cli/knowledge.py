"""`index PATH` and `search QUERY`: runbook knowledge from a terminal.

The operator runs these on their own machine, so `index` reads any folder (hosts calling
the index_folder tool are confined to knowledge.roots).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

from orchestrator_mcp.cli.common import (
    EXIT_OK,
    EXIT_UNHEALTHY,
    int_between,
    load,
    table,
)
from orchestrator_mcp.config import resolve_data_dir


def add_parsers(commands: Any) -> None:
    index = commands.add_parser(
        "index", help="index a folder of runbooks for search (incremental)",
        description="Index the Markdown (.md, .markdown) and text (.txt) files of a folder "
        "into a collection. Unchanged files are skipped, changed files re-chunked, deleted "
        "files removed. --reindex rebuilds the whole collection from this folder, e.g. after "
        "changing knowledge.embedder.")
    index.add_argument("path", type=Path, help="folder to index")
    index.add_argument("--collection", help="collection name (default: "
                       "knowledge.default_collection, 'runbooks')")
    index.add_argument("--reindex", action="store_true",
                       help="rebuild the collection from this folder with the current embedder")
    index.add_argument("--json", action="store_true", help="print the report as JSON")
    index.set_defaults(func=index_command)

    search = commands.add_parser(
        "search", help="search indexed runbooks",
        description="Search a collection: full-text (fts), semantic (vector) or both "
        "(hybrid; auto picks hybrid when the collection has vectors). Exit code 1 when "
        "nothing matched.")
    search.add_argument("query")
    search.add_argument("--collection", help="collection name (default: "
                        "knowledge.default_collection)")
    search.add_argument("--mode", choices=["auto", "fts", "vector", "hybrid"], default="auto")
    search.add_argument("--limit", type=int_between(1, 100, "limit"), default=5,
                        help="hits to show (1-100, 5)")
    search.add_argument("--json", action="store_true", help="print the hits as JSON")
    search.set_defaults(func=search_command)


def _knowledge_base(args: argparse.Namespace) -> Any:
    from orchestrator_mcp.knowledge import KnowledgeBase

    config = load(args)
    settings = config.servers.knowledge.resolved(config.config_dir)
    return KnowledgeBase(resolve_data_dir(args.data_dir) / "knowledge", settings)


def index_command(args: argparse.Namespace) -> int:
    kb = _knowledge_base(args)
    report = asyncio.run(kb.index_folder(args.path, args.collection, reindex=args.reindex,
                                         confined=False))
    if args.json:
        print(report.model_dump_json(indent=2))
        return EXIT_OK
    print(f"indexed {args.path} into '{report.collection}' with {report.embedder} "
          f"in {report.seconds:.1f} s")
    print(f"  files: {report.added_files} added, {report.updated_files} updated, "
          f"{report.unchanged_files} unchanged, {report.removed_files} removed")
    print(f"  chunks: {report.chunks_written} written, {report.chunks_removed} removed, "
          f"{report.total_chunks} in the collection")
    for skipped in report.skipped:
        print(f"  skipped {skipped.path}: {skipped.reason}")
    return EXIT_OK


def snippet(text: str, width: int = 90) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and lines[0].lstrip().startswith("#"):
        lines = lines[1:] or lines  # the heading is its own column
    flat = re.sub(r"\s+", " ", " ".join(lines)).strip()
    return flat if len(flat) <= width else flat[:width - 1] + "…"


def search_command(args: argparse.Namespace) -> int:
    kb = _knowledge_base(args)
    hits = asyncio.run(kb.search(args.query, args.collection, args.limit, args.mode))
    if args.json:
        print(json.dumps([h.model_dump() for h in hits], indent=2))
    elif hits:
        rows = [("SCORE", "SOURCE:LINES", "HEADING", "TEXT")]
        rows += [(f"{h.score:.3f}", f"{h.source}:{h.start_line}-{h.end_line}",
                  h.heading[:40] or "-", snippet(h.text)) for h in hits]
        print(f"{hits[0].match} search in '{hits[0].collection}'")
        print(table(rows))
    else:
        print("no matches", file=sys.stderr)
    return EXIT_OK if hits else EXIT_UNHEALTHY
