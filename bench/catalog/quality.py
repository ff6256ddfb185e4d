"""Search quality on the labeled task phrasings (bench/catalog/queries.yaml, the dev set the
ranking was tuned on, and queries_holdout.yaml, held out from tuning): the share of queries
whose right tool is first (top-1) or in the first five (top-5), and the mean reciprocal rank
(MRR: 1/rank of the first right tool, 0 beyond the first 10)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mcp_types
import yaml
from generate import SEED, generate, load_spec

QUERIES = Path(__file__).resolve().parent / "queries.yaml"
HOLDOUT = Path(__file__).resolve().parent / "queries_holdout.yaml"
DEPTH = 10

Search = Callable[[str], Awaitable[list[str]]]  # query -> catalog names, best first


@dataclass
class Quality:
    queries: int = 0
    top1: float = 0.0
    top5: float = 0.0
    mrr: float = 0.0
    misses: list[str] = field(default_factory=list)  # queries with no right tool in the top 5

    def line(self) -> str:
        return (f"top-1 {self.top1:.1%}  top-5 {self.top5:.1%}  MRR {self.mrr:.3f}  "
                f"({self.queries} queries)")


def load_queries(path: Path = QUERIES) -> list[dict[str, Any]]:
    return yaml.safe_load(path.read_text())


def server_tools(seed: int = SEED) -> list[tuple[str, list[mcp_types.Tool]]]:
    """The generated catalog as the gateway gets it from the 25 servers."""
    return [(server, [mcp_types.Tool(name=t.name, description=t.description,
                                     input_schema=t.input_schema,
                                     annotations=mcp_types.ToolAnnotations.model_validate(
                                         t.annotations) if t.annotations else None)
                      for t in tools])
            for server, tools in generate(load_spec(), seed).items()]


async def evaluate(search: Search, queries: list[dict[str, Any]]) -> Quality:
    quality = Quality(queries=len(queries))
    hits1 = hits5 = 0
    reciprocal = 0.0
    for item in queries:
        found = (await search(item["q"]))[:DEPTH]
        rank = next((n for n, name in enumerate(found, 1) if name in item["expect"]), None)
        if rank == 1:
            hits1 += 1
        if rank is not None and rank <= 5:
            hits5 += 1
        else:
            quality.misses.append(f"{item['q']!r}: expected {item['expect'][0]}, got "
                                  f"{found[:3]}")
        reciprocal += 1.0 / rank if rank else 0.0
    quality.top1, quality.top5 = hits1 / len(queries), hits5 / len(queries)
    quality.mrr = reciprocal / len(queries)
    return quality
