"""What does a hop through an MCP proxy cost? Figures and ratios over interleaved rounds.

    python bench/proxy_overhead.py [--calls 1000] [--concurrency 20] [--startup-repeats 5]
                                   [--only direct,relay,fastmcp-proxy,...] [--separate-sessions]
                                   [--rounds 5]

The caller is always fastmcp's ``Client`` over stdio, calling ``call_tool_mcp`` (the raw
result, no client-side parsing). Variants:

* ``direct``            server-everything itself (node)
* ``relay``             ``bench/relay_lowlevel.py``: the floor, a relay on the low-level mcp server
* ``fastmcp-proxy``     ``bench/hello_fastmcp.py --proxy``: fastmcp's ``create_proxy``
* ``orch-call_tool``    orchestrator-mcp, front tool ``call_tool`` -> ``everything_echo``
* ``orch-passthrough``  orchestrator-mcp, ``everything_echo`` exposed directly
* ``hello``             bare FastMCP server with one tool (start-up baseline only)

Start-up is spawn -> first successful ``list_tools``; for it the orchestrator has three
downstream servers and must answer without waiting for them. A benchmark, not a test: the
exit code is 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from _figures import machine, spread
from fastmcp import Client
from fastmcp.client.transports import StdioTransport

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PYTHON = sys.executable
FALLBACK_NODE_MODULES = Path("/tmp/npmtest/node_modules")
CHILD_ENV = {"FASTMCP_CHECK_FOR_UPDATES": "off"}

ECHO_ARGS: dict[str, Any] = {"message": "hi"}
WARMUP_CALLS = 50
READY_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_S = 30.0

ORCH_VARIANTS = ("orch-call_tool", "orch-passthrough")
LATENCY_VARIANTS = ("direct", "relay", "fastmcp-proxy", *ORCH_VARIANTS)
ALL_VARIANTS = (*LATENCY_VARIANTS, "hello")
INSTANCE = "{instance}"  # placeholder in Launch.args, replaced per server process

T = TypeVar("T")
StdioClient = Client[StdioTransport]


class BenchError(Exception):
    """A variant could not be measured; the message says why."""


@dataclass(frozen=True)
class Launch:
    """How to start one stdio MCP server; `key` names it (start-up is measured once per key)."""

    key: str
    command: str
    args: tuple[str, ...]

    def instance(self, number: int) -> Launch:
        """This launch for server process `number` (separate state dirs where needed)."""
        args = tuple(arg.replace(INSTANCE, str(number)) for arg in self.args)
        return replace(self, args=args)


@dataclass(frozen=True)
class Call:
    """The call a variant times, and the listed tool that shows the server is ready for it."""

    tool: str
    arguments: dict[str, Any]
    ready_tool: str


@dataclass
class Row:
    name: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    shared_cps: float | None = None
    separate_cps: float | None = None
    startup_s: float | None = None
    first_call_s: float | None = None  # spawn -> first successful downstream call
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Options:
    calls: int
    concurrency: int
    concurrent_calls: int
    startup_repeats: int
    separate_sessions: bool
    client_mode: str
    only: tuple[str, ...]
    logs: Path
    rounds: int = 5


@dataclass
class Plan:
    """What each variant launches; `skipped` says why a variant cannot run at all.

    Every server of the run is started from a path under `work`, so a process whose command
    line mentions `work` after its client has closed is one this run left behind.
    """

    work: Path
    latency: dict[str, tuple[Launch, Call]] = field(default_factory=dict)
    startup: dict[str, Launch] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)


# --------------------------------------------------------------------------- locating servers


def find_server_js(package: str) -> Path | None:
    """dist/index.js of an npm reference server: <repo>/node_modules, then $<NAME>_JS
    (EVERYTHING_JS, MEMORY_JS, FILESYSTEM_JS), then /tmp/npmtest/node_modules."""
    rel = Path("@modelcontextprotocol") / package / "dist" / "index.js"
    candidates = [REPO_DIR / "node_modules" / rel]
    from_env = os.environ.get(f"{package.removeprefix('server-').upper()}_JS")
    if from_env:
        candidates.append(Path(from_env))
    candidates.append(FALLBACK_NODE_MODULES / rel)
    return next((path for path in candidates if path.is_file()), None)


def linked_server_js(work: Path, package: str) -> Path | None:
    """The server's index.js through a symlink under `work` (node runs the real file)."""
    js = find_server_js(package)
    if js is None:
        return None
    link = work / "servers" / f"{package}.js"
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(js)
    return link


def write_servers_yaml(config_dir: Path, servers: dict[str, list[str]]) -> None:
    """servers.yaml with passthrough on (tool search off, so the built-in agents' tools do
    not turn the list into search_tools); `servers` maps name -> [command, *args]."""
    lines = ["gateway:", "  passthrough: true", "  tool_search_threshold: 0", "servers:"]
    for name, (command, *args) in servers.items():
        quoted = ", ".join(f'"{arg}"' for arg in args)
        lines += [f"  {name}:", f"    command: {command}", f"    args: [{quoted}]"]
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "servers.yaml").write_text("\n".join(lines) + "\n")


def orchestrator_launch(work: Path, key: str, servers: dict[str, list[str]]) -> Launch:
    config_dir = work / key / "config"
    write_servers_yaml(config_dir, servers)
    data_dir = work / key / f"data-{INSTANCE}"  # the data dir holds a lock: one per process
    args = ("-m", "orchestrator_mcp", "--config-dir", str(config_dir), "--data-dir", str(data_dir))
    return Launch(key, PYTHON, (*args, "serve"))


def build_plan(work: Path) -> Plan:
    plan = Plan(work)
    plan.startup["hello"] = Launch("hello", PYTHON, (str(BENCH_DIR / "hello_fastmcp.py"),))
    everything = linked_server_js(work, "server-everything")
    if everything is None:
        reason = (
            "server-everything not found in <repo>/node_modules (run `npm install`), "
            f"$EVERYTHING_JS or {FALLBACK_NODE_MODULES}"
        )
        plan.skipped.update(dict.fromkeys(LATENCY_VARIANTS, reason))
        return plan
    everything_cmd = ["node", str(everything), "stdio"]
    echo = Call("echo", ECHO_ARGS, ready_tool="echo")
    relay_py, proxy_py = str(BENCH_DIR / "relay_lowlevel.py"), str(BENCH_DIR / "hello_fastmcp.py")
    launches = {
        "direct": Launch("direct", "node", tuple(everything_cmd[1:])),
        "relay": Launch("relay", PYTHON, (relay_py, *everything_cmd)),
        "fastmcp-proxy": Launch("fastmcp-proxy", PYTHON, (proxy_py, "--proxy", *everything_cmd)),
    }
    for name, launch in launches.items():
        plan.latency[name] = (launch, echo)
        plan.startup[name] = launch
    if importlib.util.find_spec("orchestrator_mcp") is None:
        reason = "orchestrator_mcp is not importable (not written or not installed yet)"
        plan.skipped.update(dict.fromkeys(ORCH_VARIANTS, reason))
    else:
        add_orchestrator(plan, work, everything_cmd)
    return plan


def add_orchestrator(plan: Plan, work: Path, everything_cmd: list[str]) -> None:
    one = orchestrator_launch(work, "orchestrator", {"everything": everything_cmd})
    front = {"name": "everything_echo", "arguments": ECHO_ARGS}
    plan.latency["orch-call_tool"] = (one, Call("call_tool", front, "everything_echo"))
    plan.latency["orch-passthrough"] = (one, Call("everything_echo", ECHO_ARGS, "everything_echo"))
    servers = {"everything": everything_cmd}
    fs_root = work / "fs-root"
    fs_root.mkdir()
    for package, extra in (("server-memory", []), ("server-filesystem", [str(fs_root)])):
        js = linked_server_js(work, package)
        if js is not None:
            servers[package.removeprefix("server-")] = ["node", str(js), *extra]
    three = orchestrator_launch(work, "orchestrator-3-downstream", servers)
    for name in ORCH_VARIANTS:
        plan.startup[name] = three
        if len(servers) < 3:
            missing = f"only {len(servers)} downstream servers found for start-up: {list(servers)}"
            plan.notes.setdefault(name, []).append(f"WARNING: {missing}")


# --------------------------------------------------------------------------- client plumbing


def make_client(launch: Launch, log: Path, mode: str) -> StdioClient:
    transport = StdioTransport(
        launch.command, list(launch.args), env=CHILD_ENV, keep_alive=False, log_file=log
    )
    return Client(transport, mode=mode, timeout=REQUEST_TIMEOUT_S, init_timeout=READY_TIMEOUT_S)


async def tool_names(client: StdioClient) -> list[str]:
    return [tool.name for tool in await client.list_tools(cache_mode="bypass")]


async def wait_for_tool(client: StdioClient, tool: str) -> list[str]:
    """Poll list_tools until `tool` is listed (downstream servers connect in the background)."""
    names: list[str] = []
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        names = await tool_names(client)
        if tool in names:
            return names
        await asyncio.sleep(0.1)
    raise BenchError(f"{tool!r} not listed after {READY_TIMEOUT_S:.0f} s; tools: {names}")


async def call_once(client: StdioClient, call: Call) -> None:
    result = await client.call_tool_mcp(call.tool, call.arguments)
    if result.is_error:
        raise BenchError(f"{call.tool} returned an error: {result.content}")


async def timed(action: Callable[[], Awaitable[T]]) -> tuple[float, T]:
    start = time.perf_counter()
    value = await action()
    return time.perf_counter() - start, value


def log_tail(log: Path, lines: int = 12) -> str:
    if not log.is_file():
        return "    | (no log)"
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(f"    | {line}" for line in tail)


# --------------------------------------------------------------------------- measurements


async def sequential_latencies(client: StdioClient, call: Call, n: int) -> list[float]:
    samples: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        await call_once(client, call)
        samples.append(time.perf_counter() - start)
    return samples


def percentile_ms(samples: list[float], pct: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[pct - 1] * 1000


async def throughput(clients: Sequence[StdioClient], call: Call, opts: Options) -> float:
    """calls/s of `opts.concurrency` tasks spread round-robin over `clients`."""
    per_task = max(1, opts.concurrent_calls // opts.concurrency)

    async def worker(client: StdioClient) -> None:
        for _ in range(per_task):
            await call_once(client, call)

    workers = [worker(clients[i % len(clients)]) for i in range(opts.concurrency)]
    elapsed, _ = await timed(lambda: asyncio.gather(*workers))
    return per_task * opts.concurrency / elapsed


async def measure_latency(row: Row, launch: Launch, call: Call, opts: Options) -> None:
    """Sequential p50/p99, then throughput of concurrent tasks sharing this one session."""
    log = opts.logs / f"{row.name}.log"
    async with make_client(launch.instance(0), log, opts.client_mode) as client:
        names = await wait_for_tool(client, call.ready_tool)
        row.notes.append(f"{len(names)} tools listed, era {client.protocol_version}")
        for _ in range(WARMUP_CALLS):
            await call_once(client, call)
        samples = await sequential_latencies(client, call, opts.calls)
        row.p50_ms, row.p99_ms = percentile_ms(samples, 50), percentile_ms(samples, 99)
        row.shared_cps = await throughput([client], call, opts)


async def measure_separate_sessions(row: Row, launch: Launch, call: Call, opts: Options) -> None:
    """Throughput with one client session, so one server process tree, per concurrent task."""
    async with AsyncExitStack() as stack:
        clients: list[StdioClient] = []
        for number in range(1, opts.concurrency + 1):
            log = opts.logs / f"{row.name}-session{number}.log"
            client = make_client(launch.instance(number), log, opts.client_mode)
            clients.append(await stack.enter_async_context(client))
        for client in clients:
            await wait_for_tool(client, call.ready_tool)
            for _ in range(WARMUP_CALLS // 10):
                await call_once(client, call)
        row.separate_cps = await throughput(clients, call, opts)


async def first_listing(launch: Launch, log: Path, mode: str) -> tuple[float, list[str]]:
    """Seconds from spawn to the first successful list_tools; closing is not timed."""
    async with AsyncExitStack() as stack:

        async def connect_and_list() -> list[str]:
            client = await stack.enter_async_context(make_client(launch, log, mode))
            return await tool_names(client)

        return await timed(connect_and_list)


async def first_call(launch: Launch, call: Call, log: Path, mode: str) -> float:
    """Seconds from spawn to the first successful call of `call` (a downstream tool, which
    fails or is unknown until its server has connected); closing is not timed."""
    async with AsyncExitStack() as stack:

        async def connect_and_call() -> None:
            client = await stack.enter_async_context(make_client(launch, log, mode))
            deadline = time.monotonic() + READY_TIMEOUT_S
            while True:
                try:
                    return await call_once(client, call)
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.01)

        elapsed, _ = await timed(connect_and_call)
        return elapsed


async def measure_startup(row: Row, launch: Launch, opts: Options,
                          call: Call | None = None) -> None:
    """Start-up (median of the repeats); with `call`, also the first downstream call."""
    log = opts.logs / f"{launch.key}-startup.log"
    times: list[float] = []
    calls: list[float] = []
    names: list[str] = []
    for number in range(opts.startup_repeats):
        elapsed, names = await first_listing(launch.instance(100 + number), log, opts.client_mode)
        if not names:
            raise BenchError("first list_tools returned no tools")
        times.append(elapsed)
        if call is not None:
            calls.append(await first_call(launch.instance(200 + number), call, log,
                                          opts.client_mode))
    row.startup_s = statistics.median(times)
    row.notes.append(f"start-up ({launch.key}): first list_tools had {len(names)} tools")
    if calls:
        row.first_call_s = statistics.median(calls)


def pids_mentioning(marker: str) -> list[int]:
    """Live processes (not zombies) whose command line contains `marker`; Linux /proc only."""
    pids: list[int] = []
    for proc in Path("/proc").glob("[0-9]*"):
        with suppress(OSError):
            if marker.encode() in (proc / "cmdline").read_bytes() and int(proc.name) != os.getpid():
                pids.append(int(proc.name))
    return pids


async def reap_leftovers(row: Row, plan: Plan, grace_s: float = 5.0) -> None:
    """Note and terminate processes of this run still alive `grace_s` after their client closed."""
    deadline = time.monotonic() + grace_s
    while (pids := pids_mentioning(str(plan.work))) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    for pid in pids:
        with suppress(OSError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            os.kill(pid, signal.SIGTERM)
            row.notes.append(f"LEFTOVER process {pid} terminated by the benchmark: {command[:90]}")


# --------------------------------------------------------------------------- run + report


async def guarded(row: Row, what: str, action: Awaitable[None], log: Path) -> None:
    """Run one measurement; a failure is noted on the row and printed, never fatal."""
    try:
        await action
    except Exception as exc:  # noqa: BLE001 - a benchmark reports failures, it does not crash
        message = f"{what} FAILED: {type(exc).__name__}: {exc}"
        row.notes.append(message)
        print(f"[{row.name}] {message}\n  log {log}:\n{log_tail(log)}", file=sys.stderr)


async def run_variant(name: str, plan: Plan, opts: Options, startups: dict[str, float]) -> Row:
    row = Row(name, notes=list(plan.notes.get(name, [])))
    if name in plan.skipped:
        row.notes.append(f"SKIPPED: {plan.skipped[name]}")
        return row
    print(f"[{name}] measuring ...", file=sys.stderr, flush=True)
    if name in plan.latency:
        launch, call = plan.latency[name]
        log = opts.logs / f"{name}.log"
        await guarded(row, "latency", measure_latency(row, launch, call, opts), log)
        await reap_leftovers(row, plan)
        if opts.separate_sessions:
            separate = measure_separate_sessions(row, launch, call, opts)
            await guarded(row, "separate sessions", separate, opts.logs / f"{name}-session1.log")
            await reap_leftovers(row, plan)
    launch = plan.startup[name]
    if launch.key in startups:
        row.startup_s = startups[launch.key]
        row.notes.append(f"start-up ({launch.key}): measured above")
        return row
    log = opts.logs / f"{launch.key}-startup.log"
    downstream = plan.latency[name][1] if name.startswith("orch") and name in plan.latency \
        else None
    await guarded(row, "start-up", measure_startup(row, launch, opts, downstream), log)
    await reap_leftovers(row, plan)
    if row.startup_s is not None:
        startups[launch.key] = row.startup_s
    return row


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[Row], opts: Options) -> None:
    headers = (
        "variant",
        "p50 ms",
        "p99 ms",
        f"calls/s ({opts.concurrency} tasks, 1 session)",
        f"calls/s ({opts.concurrency} sessions)",
        "start-up s",
    )
    cells = [
        (
            r.name,
            fmt(r.p50_ms, ".3f"),
            fmt(r.p99_ms, ".3f"),
            fmt(r.shared_cps, ".0f"),
            fmt(r.separate_cps, ".0f"),
            fmt(r.startup_s, ".3f"),
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in (headers, *cells)) for i in range(len(headers))]
    for line in (headers, tuple("-" * width for width in widths), *cells):
        first, *rest = zip(line, widths, strict=True)
        padded = [first[0].ljust(first[1]), *(cell.rjust(width) for cell, width in rest)]
        print("  ".join(padded))
    print()
    for row in rows:
        for note in row.notes:
            print(f"  {row.name}: {note}")


def merged(name: str, rounds: list[dict[str, Row]]) -> Row:
    """A variant's figures over the rounds: the median of each (its notes, once)."""
    rows = [r[name] for r in rounds if name in r]
    row = Row(name)
    for attr in ("p50_ms", "p99_ms", "shared_cps", "separate_cps", "startup_s",
                 "first_call_s"):
        values = [v for r in rows if (v := getattr(r, attr)) is not None]
        setattr(row, attr, statistics.median(values) if values else None)
    row.notes = list(dict.fromkeys(note for r in rows for note in r.notes))
    return row


def print_ratios(rounds: list[dict[str, Row]]) -> None:
    """Each ratio taken within a round (both figures measured minutes apart at most), then
    its median [min–max] over the rounds."""
    def per_round(num: tuple[str, str], den: tuple[str, str]) -> list[float]:
        values = []
        for rows in rounds:
            a = getattr(rows[num[0]], num[1]) if num[0] in rows else None
            b = getattr(rows[den[0]], den[1]) if den[0] in rows else None
            if a is not None and b:
                values.append(a / b)
        return values

    def show(label: str, values: list[float], target: float) -> None:
        if not values:
            print(f"  {label:<52}    n/a")
            return
        verdict = "PASS" if statistics.median(values) <= target else "MISS"
        print(f"  {label:<52} {spread(values):>20}  (target <= {target:g})  {verdict}")

    print("\nratios (within each round; median [min–max] over the rounds):")
    for orch in (name for name in ORCH_VARIANTS if name in rounds[0]):
        for label, num, den, target in (
                (f"{orch} p50 / fastmcp-proxy p50", (orch, "p50_ms"),
                 ("fastmcp-proxy", "p50_ms"), 0.6),
                (f"{orch} p50 / relay-floor p50", (orch, "p50_ms"), ("relay", "p50_ms"),
                 1.2 if orch == "orch-call_tool" else 1.3),
                (f"{orch} start-up (3 downstream) / hello", (orch, "startup_s"),
                 ("hello", "startup_s"), 1.1)):
            show(label, per_round(num, den), target)
    show("orch-passthrough p50 / orch-call_tool p50",
         per_round(("orch-passthrough", "p50_ms"), ("orch-call_tool", "p50_ms")), 1.05)
    firsts = [rows[n].first_call_s for rows in rounds for n in ORCH_VARIANTS
              if n in rows and rows[n].first_call_s is not None]
    show("orch: spawn -> first downstream call, s", firsts, 1.5)


async def run(opts: Options) -> None:
    rounds: list[dict[str, Row]] = []
    with tempfile.TemporaryDirectory(prefix="proxy-bench-") as work:
        plan = build_plan(Path(work))
        for number in range(opts.rounds):  # variants interleaved: A, B, C, A, B, C, ...
            print(f"round {number + 1} of {opts.rounds}", file=sys.stderr, flush=True)
            startups: dict[str, float] = {}
            rounds.append({name: await run_variant(name, plan, opts, startups)
                           for name in opts.only})
    print(
        f"\nproxy overhead: {opts.calls} sequential echo calls after {WARMUP_CALLS} warm-up; "
        f"{opts.concurrent_calls} calls by {opts.concurrency} concurrent tasks; start-up median "
        f"of {opts.startup_repeats}; client mode {opts.client_mode!r}; {opts.rounds} rounds, "
        "figures are medians over them"
    )
    print(machine() + "\n")
    print_table([merged(name, rounds) for name in opts.only], opts)
    print_ratios(rounds)


def parse_options(argv: Sequence[str] | None, logs: Path) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add("--calls", type=int, default=1000, help="sequential timed calls per variant")
    add("--concurrency", type=int, default=20, help="concurrent caller tasks")
    add("--concurrent-calls", type=int, default=2000, help="total calls of the concurrent test")
    add("--startup-repeats", type=int, default=5, help="start-up samples (the median is shown)")
    add(
        "--separate-sessions",
        action="store_true",
        help="also measure with one session (one server process tree) per concurrent task",
    )
    add("--client-mode", default="auto", help="fastmcp Client mode: auto, legacy or a version")
    add("--only", default=",".join(ALL_VARIANTS), help=f"comma list of {','.join(ALL_VARIANTS)}")
    add("--rounds", type=int, default=5, help="rounds of every variant, interleaved")
    ns = parser.parse_args(argv)
    only = tuple(name.strip() for name in ns.only.split(",") if name.strip())
    unknown = sorted(set(only) - set(ALL_VARIANTS))
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(ALL_VARIANTS)}")
    return Options(
        calls=ns.calls,
        concurrency=ns.concurrency,
        concurrent_calls=ns.concurrent_calls,
        startup_repeats=ns.startup_repeats,
        separate_sessions=ns.separate_sessions,
        client_mode=ns.client_mode,
        only=only,
        logs=logs,
        rounds=max(1, ns.rounds),
    )


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.update(CHILD_ENV)
    with tempfile.TemporaryDirectory(prefix="proxy-bench-logs-") as logs:
        asyncio.run(run(parse_options(argv, Path(logs))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
