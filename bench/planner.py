"""The price of durability: the planner loop on DBOS against the same loop without it.

A scripted model with no latency asks for `--steps` tool calls, then answers; the tool is
an in-process FastMCP server mounted on the gateway. Both loops make the same model calls
and the same gateway calls; the durable one also records every step (DBOS on SQLite, our
runs table and tool-call ledger).

    python bench/planner.py [--steps 10] [--concurrency 1,10,100] [--runs-per-level 20]
                            [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")

from _figures import machine, spread  # noqa: E402
from fastmcp import FastMCP  # noqa: E402
from mcp_types import ToolAnnotations  # noqa: E402

from orchestrator_mcp.config import GatewaySettings, ProfileConfig  # noqa: E402
from orchestrator_mcp.config.runs import RunsSettings  # noqa: E402
from orchestrator_mcp.gateway import Gateway  # noqa: E402
from orchestrator_mcp.llm import Message, ToolSpec  # noqa: E402
from orchestrator_mcp.llm.scripted import ScriptedProvider, ScriptFile  # noqa: E402
from orchestrator_mcp.runs.engine import RunEngine  # noqa: E402


def script(steps: int) -> ScriptFile:
    turns = [{"tool_calls": [{"name": "bench_noop", "arguments": {"n": i}}]}
             for i in range(steps)]
    return ScriptFile.model_validate({"scripts": [{"turns": [*turns, {"text": "done"}]}]})


def tool_server() -> FastMCP:
    server = FastMCP("bench")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
    def noop(n: int) -> int:
        return n

    return server


async def plain_loop(provider: ScriptedProvider, gateway: Gateway, goal: str) -> int:
    """The same loop, nothing recorded: the peer."""
    messages = [Message(role="user", content=goal)]
    specs = [ToolSpec(name=n, description="", input_schema=e.tool.input_schema)
             for n, e in gateway.catalog.tools.items()]
    steps = 0
    while True:
        completion = await provider.complete(messages, specs)
        steps += 1
        if not completion.tool_calls:
            return steps
        messages.append(Message(role="assistant", tool_calls=completion.tool_calls))
        for call in completion.tool_calls:
            result = await gateway.call_tool(call.name, call.arguments)
            steps += 1
            messages.append(Message(role="tool", tool_call_id=call.id,
                                    content=str(result.content)))


async def level(concurrency: int, runs: int, work: object) -> tuple[float, int]:
    """Run `runs` runs, `concurrency` at a time; (seconds, steps)."""
    semaphore = asyncio.Semaphore(concurrency)
    steps = 0

    async def one(i: int) -> None:
        nonlocal steps
        async with semaphore:
            done = await work(i)  # type: ignore[operator]
        steps += done

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(runs)))
    return time.perf_counter() - started, steps


async def main(args: argparse.Namespace) -> None:
    data = Path(tempfile.mkdtemp(prefix="orch-planner-bench-"))
    provider = ScriptedProvider(script(args.steps))
    gateway = Gateway({}, GatewaySettings(), in_process={"bench": tool_server()})
    gateway.start()
    await gateway.wait_settled(30)
    profile = ProfileConfig(approval={"destructive": "allow"},
                            budgets={"max_steps": args.steps + 5})
    engine = RunEngine(data, gateway, {"default": profile}, lambda _: provider,
                       lambda *_: 0.0, settings=RunsSettings(worker_concurrency=1000))
    await engine.start()

    async def durable(i: int) -> int:
        record = await engine.submit(f"bench run {i}")
        record = await engine.wait(record.id, 600, until_attention=False)
        assert record.status.value == "completed", record.error
        return sum(1 for s in record.steps if s.kind in ("llm", "tool"))

    async def plain(i: int) -> int:
        return await plain_loop(provider, gateway, f"bench run {i}")

    print(f"{args.steps} tool calls + 1 answer per run; scripted model, in-process tool; "
          f"DBOS on SQLite; {args.rounds} rounds, plain and durable interleaved in each")
    print(machine() + "\n")
    print(f"{'concurrent runs':>15} {'loop':>8} {'runs':>5}  {'ms per step, median [min–max]':>30}"
          f"  {'steps/s, median':>15}")
    ratios = []
    measured: dict[int, tuple[float, float]] = {}  # concurrency → durable ms per step, steps/s
    for concurrency in args.concurrency:
        runs = max(args.runs_per_level, concurrency)
        ms: dict[str, list[float]] = {"plain": [], "durable": []}
        rates: dict[str, list[float]] = {"plain": [], "durable": []}
        round_ratios = []
        for _ in range(args.rounds):
            for name, work in (("plain", plain), ("durable", durable)):
                seconds, steps = await level(concurrency, runs, work)
                rates[name].append(steps / seconds)
                ms[name].append(1000 * seconds / steps * min(concurrency, runs))
            round_ratios.append(rates["plain"][-1] / rates["durable"][-1])
        for name in ("plain", "durable"):
            print(f"{concurrency:>15} {name:>8} {runs:>5}  {spread(ms[name]):>30}"
                  f"  {statistics.median(rates[name]):>15.0f}")
        ratios.append((concurrency, round_ratios))
        measured[concurrency] = (statistics.median(ms["durable"]),
                                 statistics.median(rates["durable"]))
    print("\nprice of durability (plain steps/s ÷ durable steps/s in the same round), "
          "median [min–max]:")
    for concurrency, values in ratios:
        print(f"  {concurrency:>4} concurrent: {spread(values, 1)}x")
    print("\ntargets (medians):")
    for concurrency, target_ms, target_rate in ((1, 5.0, None), (100, None, 300.0)):
        if concurrency not in measured:
            continue
        ms_, rate = measured[concurrency]
        if target_ms is not None:
            print(f"  {concurrency:>4} concurrent: {ms_:.2f} ms per durable step (target ≤ "
                  f"{target_ms:g}): {'PASS' if ms_ <= target_ms else 'MISS'}")
        if target_rate is not None:
            print(f"  {concurrency:>4} concurrent: {rate:.0f} durable steps/s (target ≥ "
                  f"{target_rate:g}): {'PASS' if rate >= target_rate else 'MISS'}")
    await engine.stop()  # first: its runs call into the gateway
    await gateway.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")],
                        default=[1, 10, 100])
    parser.add_argument("--runs-per-level", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds of plain and durable, interleaved (default 5)")
    asyncio.run(main(parser.parse_args()))
    sys.exit(0)
