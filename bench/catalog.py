"""Large catalogs: 25 generated ops servers with 1,000 tools behind the front.

    python bench/catalog.py [--rounds 5] [--calls 100] [--no-front] [--no-hybrid]

Four parts, every figure printed with the command that made it (this script):

1. **Search quality** (deterministic): the labeled task phrasings of
   bench/catalog/queries.yaml (the dev set the ranking was tuned on) and of
   bench/catalog/queries_holdout.yaml (held out, never tuned on) against the generated
   catalog, through the product's ranking (orchestrator_mcp/front/tool_search.py) in this
   process: fastmcp's BM25 search transform (what the front used before), ours without and
   with the read-only-first rule, and hybrid (BM25 + the local embedder, when installed).
   Top-1, top-5, MRR, per kind of hard case.
2. **Hybrid's cost** (when the embedder is installed): model load, embedding the 1,000 tool
   descriptions, the RSS it adds to a process, and a query's p50, BM25 and hybrid
   interleaved in rounds.
3. **The real front** (`serve`, stdio, pass-through with tool search) with the 25 servers
   (`bench/catalog/server.py`, one FastMCP process each), against a bare FastMCP hello
   server, interleaved in rounds: start-up to the first `list_tools`, to every server up
   and the whole catalog searchable; then `list_tools` and `search_tools` p50 over the
   client.
4. **Context a host pays**: tokens of the full catalog's tool definitions (what a host
   would list with pass-through and no search) against what it sees with search: the
   front's tool list, and that plus one `search_tools` answer (median over the labeled
   queries). Tokens are estimated as characters / 4: tiktoken is not installed here and its
   encodings cannot be downloaded, so no real tokenizer was available; the ratio, not the
   absolute count, is what is read.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")
BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR / "catalog"))

import mcp_types  # noqa: E402
import quality  # noqa: E402
from _figures import machine, spread  # noqa: E402
from fastmcp import Client  # noqa: E402
from fastmcp.client.transports import StdioTransport  # noqa: E402
from generate import generate, load_spec  # noqa: E402

from orchestrator_mcp.front import tool_search  # noqa: E402
from orchestrator_mcp.front.tool_search import ToolSearch  # noqa: E402
from orchestrator_mcp.gateway.catalog import build_catalog  # noqa: E402

PYTHON = sys.executable
CHILD_ENV = {"FASTMCP_CHECK_FOR_UPDATES": "off", "FASTMCP_LOG_LEVEL": "WARNING"}
TOKEN_TARGET = 0.05
TOP5_TARGET = 0.95
READY_TIMEOUT_S = 600.0
TIMED_QUERIES = 40  # of the labeled set, for query latency


def tokens(chars: float) -> float:
    """Estimated tokens of JSON text of `chars` characters."""
    return chars / 4


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --------------------------------------------------------------------------- 1. quality


@functools.cache
def catalog() -> Any:
    """The generated catalog, built once (ToolSearch indexes each catalog object once)."""
    return build_catalog(quality.server_tools())


async def fastmcp_search() -> Callable[[str], Awaitable[list[str]]]:
    """What the front ran before: fastmcp's BM25SearchTransform over the pass-through
    tools (their description prefixed with "[server]", as GatewayTool has it)."""
    from fastmcp.server.transforms.search import BM25SearchTransform
    from fastmcp.tools import Tool

    class Listed(Tool):
        async def run(self, arguments: dict[str, Any]) -> Any:
            raise NotImplementedError

    tools = [Listed(name=e.name, description=f"[{e.server}] {e.tool.description}",
                    parameters=e.tool.input_schema) for e in catalog().tools.values()]
    transform = BM25SearchTransform(max_results=quality.DEPTH)

    async def search(query: str) -> list[str]:
        return [t.name for t in await transform._search(tools, query)]

    return search


def ours(search: ToolSearch, tie: float | None = None) -> Callable[[str], Awaitable[list[str]]]:
    async def run(query: str) -> list[str]:
        if tie is None:
            found, _ = await search.search(query, quality.DEPTH)
            return [entry.name for entry, _ in found]
        index = await search.index()
        ranked = tool_search.rank(index.bm25(query), index.read_only, quality.DEPTH, tie)
        return [index.entries[i].name for i, _ in ranked]

    return run


async def measure_quality(hybrid: ToolSearch | None) -> None:
    bm25 = ToolSearch(catalog)
    variants: list[tuple[str, Callable[[str], Awaitable[list[str]]]]] = [
        ("fastmcp BM25 (before)", await fastmcp_search()),
        ("ours BM25, plain order", ours(bm25, tie=0.0)),
        ("ours BM25, read-only first", ours(bm25)),
    ]
    if hybrid is not None:
        variants.append(("ours hybrid, read-only first", ours(hybrid)))
    for title, path in (("the dev set, queries.yaml (ranking tuned on it)", quality.QUERIES),
                        ("the held-out set, queries_holdout.yaml", quality.HOLDOUT)):
        await quality_table(title, quality.load_queries(path), variants)


async def quality_table(title: str, queries: list[dict[str, Any]],
                        variants: list[tuple[str, Callable[[str], Awaitable[list[str]]]]]
                        ) -> None:
    kind = [q.get("hard", "plain") for q in queries]
    kinds = sorted(set(kind))
    counts = ", ".join(f"{kind.count(k)} {k}" for k in kinds)
    print(f"\n1. search quality on {title}: {len(queries)} labeled phrasings ({counts}), "
          f"1,000 tools; target top-5 >= {TOP5_TARGET:.0%}")
    print(f"  {'ranking':<30} {'top-1':>7} {'top-5':>7} {'MRR':>6}   "
          + "  ".join(f"{k} top-5" for k in kinds))
    for label, search in variants:
        whole = await quality.evaluate(search, queries)
        parts = [await quality.evaluate(search, [q for q in queries
                                                 if q.get("hard", "plain") == k])
                 for k in kinds]
        verdict = "PASS" if whole.top5 >= TOP5_TARGET else "MISS"
        print(f"  {label:<30} {whole.top1:>7.1%} {whole.top5:>7.1%} {whole.mrr:>6.3f}   "
              + "  ".join(f"{p.top5:>{len(k) + 6}.1%}" for k, p in zip(kinds, parts,
                                                                      strict=True))
              + f"   {verdict}")
        if os.environ.get("CATALOG_BENCH_MISSES"):
            for miss in whole.misses:
                print(f"      miss: {miss}")


# --------------------------------------------------------------------------- 2. hybrid cost


async def hybrid_search(rounds: int) -> ToolSearch | None:
    from orchestrator_mcp.knowledge.embedders import (
        DEFAULT_LOCAL,
        LocalEmbedder,
        load_local_model,
        local_available,
    )

    print("\n2. hybrid's cost (in this process, the code serve runs)")
    if not local_available():
        print("  SKIPPED: the embeddings extra is not installed (pip install "
              "'orchestrator-mcp[embeddings]')")
        return None
    before = rss_mb()
    started = time.perf_counter()
    await asyncio.to_thread(load_local_model)
    load_s = time.perf_counter() - started
    embedder = LocalEmbedder(DEFAULT_LOCAL, batch_size=64)
    search = ToolSearch(catalog, "hybrid", embedder.embed)
    started = time.perf_counter()
    await search.embedded()
    embed_s = time.perf_counter() - started
    print(f"  model load {load_s:.1f} s; embedding the 1,000 tool descriptions "
          f"{embed_s:.1f} s ({1000 / embed_s:.0f}/s), once per catalog change, in a thread; "
          f"RSS +{rss_mb() - before:.0f} MB (model and torch)")
    bm25 = ToolSearch(catalog)
    await bm25.index()
    queries = [q["q"] for q in quality.load_queries()][:TIMED_QUERIES]
    per_round: dict[str, list[float]] = {"bm25": [], "hybrid": []}
    for _ in range(rounds):
        for label, engine in (("bm25", bm25), ("hybrid", search)):
            samples = []
            for query in queries:
                started = time.perf_counter()
                await engine.search(query, 8)
                samples.append(time.perf_counter() - started)
            per_round[label].append(statistics.median(samples) * 1000)
    ratios = [h / b for h, b in zip(per_round["hybrid"], per_round["bm25"], strict=True)]
    print(f"  query p50 ms over {len(queries)} queries, {rounds} rounds: bm25 "
          f"{spread(per_round['bm25'])}, hybrid {spread(per_round['hybrid'])} "
          f"(hybrid/bm25 {spread(ratios, 1)})")
    return search


# --------------------------------------------------------------------------- 3. real front


def write_front_config(work: Path) -> Path:
    servers = {name: {"command": PYTHON, "args": [str(BENCH_DIR / "catalog" / "server.py"),
                                                   name], "env": CHILD_ENV}
               for name in load_spec()["servers"]}
    config = {"servers": servers,
              "gateway": {"passthrough": True, "tool_search_threshold": 40}}
    directory = work / "config"
    directory.mkdir(parents=True)
    (directory / "servers.yaml").write_text(json.dumps(config))  # JSON is YAML
    return directory


def client(command: list[str], log: Path) -> Client[StdioTransport]:
    return Client(StdioTransport(command[0], command[1:], env=CHILD_ENV, keep_alive=False,
                                 log_file=log), timeout=120, init_timeout=READY_TIMEOUT_S)


async def start_hello(work: Path) -> float:
    started = time.perf_counter()
    async with client([PYTHON, str(BENCH_DIR / "hello_fastmcp.py")], work / "hello.log") as c:
        await c.list_tools()
        return time.perf_counter() - started


async def front_round(work: Path, config: Path, number: int, calls: int,
                      queries: list[str]) -> dict[str, Any]:
    generated = set(load_spec()["servers"])
    command = [PYTHON, "-m", "orchestrator_mcp", "--config-dir", str(config),
               "--data-dir", str(work / f"data-{number}"), "serve"]
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    async with client(command, work / f"front-{number}.log") as c:
        listed = await c.list_tools()
        figures["first_list_s"] = time.perf_counter() - started
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            servers = (await c.call_tool("list_servers", {})).structured_content["result"]
            up = [s for s in servers if s["name"] in generated and s["status"] == "up"]
            if len(up) == len(generated) and sum(s["tools"] for s in up) == 1000:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(up)} of {len(generated)} servers up")
            await asyncio.sleep(0.05)
        figures["all_up_s"] = time.perf_counter() - started
        while not (await c.call_tool("search_tools", {"query": "kafka consumer lag"})
                   ).structured_content["hits"]:
            await asyncio.sleep(0.05)
        figures["searchable_s"] = time.perf_counter() - started
        listed = await c.list_tools()
        figures["listing_chars"] = sum(
            len(t.model_dump_json(by_alias=True, exclude_none=True)) for t in listed)
        figures["listing_model_chars"] = sum(model_view_chars(t) for t in listed)
        figures["listed"] = len(listed)
        answers = []
        for query in queries:
            result = await c.call_tool_mcp("search_tools", {"query": query})
            answers.append(sum(len(getattr(b, "text", "")) for b in result.content))
        figures["search_chars"] = statistics.median(answers)
        for label, action in (
                ("list_tools_ms", lambda: c.list_tools()),
                ("search_tools_ms", lambda: c.call_tool_mcp(
                    "search_tools", {"query": "restart nginx on web-3"}))):
            samples = []
            for _ in range(calls):
                t0 = time.perf_counter()
                await action()
                samples.append(time.perf_counter() - t0)
            figures[label] = statistics.median(samples) * 1000
    return figures


def model_view_chars(tool: mcp_types.Tool) -> int:
    """Characters of what most hosts hand their model of a tool: name, description and
    input schema (the API `tools` entry); output schemas and annotations stay with the
    host."""
    return len(json.dumps({"name": tool.name, "description": tool.description or "",
                           "input_schema": tool.input_schema}))


def full_catalog_chars() -> tuple[int, int]:
    """Characters of the 1,000 tool definitions as pass-through lists them (namespaced
    name, "[server] " before the description, input schema, annotations), and of their
    model view."""
    total = model = 0
    for server, tools in generate(load_spec()).items():
        for tool in tools:
            hints = (mcp_types.ToolAnnotations.model_validate(tool.annotations)
                     if tool.annotations else None)
            listed = mcp_types.Tool(name=f"{server}_{tool.name}",
                                    description=f"[{server}] {tool.description}",
                                    input_schema=tool.input_schema, annotations=hints)
            total += len(listed.model_dump_json(by_alias=True, exclude_none=True))
            model += model_view_chars(listed)
    return total, model


async def measure_front(rounds: int, calls: int) -> None:
    queries = [q["q"] for q in quality.load_queries()]
    results: list[dict[str, Any]] = []
    hello: list[float] = []
    with tempfile.TemporaryDirectory(prefix="catalog-bench-") as tmp:
        work = Path(tmp)
        config = write_front_config(work)
        for number in range(rounds):  # hello, front, hello, front, ...
            print(f"  round {number + 1} of {rounds}", file=sys.stderr, flush=True)
            hello.append(await start_hello(work))
            results.append(await front_round(work, config, number, calls, queries))
    print(f"\n3. the front with 25 generated servers (1,000 tools), stdio, {rounds} rounds "
          "interleaved with a bare FastMCP hello server; median [min-max] over rounds")

    def column(key: str) -> list[float]:
        return [r[key] for r in results]

    print(f"  hello start-up (spawn -> list_tools)           {spread(hello)} s")
    over_hello = [r["first_list_s"] / h for r, h in zip(results, hello, strict=True)]
    print(f"  front: spawn -> first list_tools               {spread(column('first_list_s'))} s"
          f"   (/ hello: {spread(over_hello)})")
    print(f"  front: spawn -> 25 servers up, 1,000 tools     {spread(column('all_up_s'))} s")
    print(f"  front: spawn -> search_tools finds them        {spread(column('searchable_s'))} s")
    print(f"  list_tools p50 ({results[0]['listed']} tools listed)          "
          f"{spread(column('list_tools_ms'))} ms  ({calls} calls per round)")
    print(f"  search_tools p50 (8 hits with schemas)         {spread(column('search_tools_ms'))} "
          f"ms  ({calls} calls per round)")

    full_chars, full_model_chars = full_catalog_chars()
    answer = tokens(results[0]["search_chars"])
    print("\n4. context a host pays (tokens ~ characters / 4); 'as listed': the tools/list "
          "JSON; 'model view': name, description and input schema, what hosts pass their "
          "model")
    for label, full, listing in (
            ("as listed", tokens(full_chars), tokens(results[0]["listing_chars"])),
            ("model view", tokens(full_model_chars),
             tokens(results[0]["listing_model_chars"]))):
        share = (listing + answer) / full
        print(f"  {label}: full catalog {full:,.0f}; the front's {results[0]['listed']} tools "
              f"with search_tools {listing:,.0f} ({listing / full:.1%}); + one search_tools "
              f"answer (median {answer:,.0f}) = {listing + answer:,.0f} ({share:.1%}; target "
              f"<= {TOKEN_TARGET:.0%})  {'PASS' if share <= TOKEN_TARGET else 'MISS'}")


async def run(args: argparse.Namespace) -> None:
    print("catalog benchmark: python bench/catalog.py " + " ".join(sys.argv[1:]))
    print(machine())
    hybrid = None if args.no_hybrid else await hybrid_search(args.rounds)
    await measure_quality(hybrid)
    if not args.no_front:
        await measure_front(args.rounds, args.calls)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=100, help="timed calls per round")
    parser.add_argument("--no-front", action="store_true", help="skip the real front (3, 4)")
    parser.add_argument("--no-hybrid", action="store_true", help="skip the local embedder")
    asyncio.run(run(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
