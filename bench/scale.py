"""Scale-out: completed runs per second with 1, 2 and 4 `orchestrator-mcp worker` processes
sharing PostgreSQL, against one worker on the embedded SQLite files (the peer), and a scale
model built from what one run costs each process.

Each run is a scripted model (no latency) calling one in-process tool (the system agent's
`uptime`) and answering: three durable steps plus our bookkeeping, so the figure is the
orchestrator's own cost per run. Runs are submitted in one burst by a client process (an
engine that does not execute: the front's part), and the clock stops when the last one has
completed. Configurations take turns, round after round; figures are medians over rounds
with their min–max.

Per run, on PostgreSQL, it also measures CPU-seconds of the workers, of the client (this
process) and of PostgreSQL (from /proc, through psutil), and the database round trips
(statements, from pg_stat_statements) and transactions. From those it predicts runs/s for
1, 2, 4 and 8 workers each on a machine of its own (one core each) and where PostgreSQL
saturates; `--pin` pins worker i to core i and PostgreSQL to the last core (taskset) to
check the prediction on this machine.

    python bench/scale.py [--runs 200] [--workers 1,2,4] [--rounds 5] [--concurrency 20]
                          [--pin]

Needs PostgreSQL's server binaries (Debian package postgresql); a throw-away cluster is
started on 127.0.0.1 and removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")

from _figures import machine, spread  # noqa: E402

from orchestrator_mcp.agents import agent_names  # noqa: E402
from orchestrator_mcp.config import load_config  # noqa: E402
from orchestrator_mcp.config.environment import forget_environment  # noqa: E402
from orchestrator_mcp.gateway import Gateway  # noqa: E402
from orchestrator_mcp.runs.engine import RunEngine  # noqa: E402
from orchestrator_mcp.runs.models import RunStatus  # noqa: E402
from tests import postgres  # noqa: E402

AGENTS_OFF = {name: {"enabled": False} for name in agent_names() if name != "system"}
SCRIPT = {"scripts": [{"turns": [{"tool_calls": [{"name": "system_uptime", "arguments": {}}]},
                                 {"text": "up"}]}]}


@dataclass
class Sample:
    rate: float  # runs/s
    cpu: dict[str, float] = field(default_factory=dict)  # CPU-seconds per run, by process
    statements: float | None = None  # database round trips per run
    transactions: float | None = None
    top: list[tuple[float, str]] = field(default_factory=list)  # statements per run, by text


def write_config(folder: Path, concurrency: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "servers.yaml").write_text(yaml.safe_dump({
        "servers": {}, "agents": AGENTS_OFF, "knowledge": {"enabled": False},
        "runs": {"worker_concurrency": concurrency}}))
    (folder / "script.yaml").write_text(yaml.safe_dump(SCRIPT))
    return folder


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def postgres_processes(url: str) -> list[psutil.Process]:
    """The cluster's postmaster and its backends (found by the port in its command line)."""
    port = url.rsplit(":", 1)[1].split("/")[0]
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if cmdline and cmdline[0].endswith("postgres") and port in cmdline:
            return [process, *process.children(recursive=True)]
    return []


def database_counters(url: str) -> tuple[float, float]:
    """(statements, transactions) the database has run so far."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        statements = db.execute("SELECT coalesce(sum(calls), 0) FROM pg_stat_statements "
                                "WHERE dbid = (SELECT oid FROM pg_database "
                                "WHERE datname = current_database())").fetchone()[0]
        transactions = db.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database "
                                  "WHERE datname = current_database()").fetchone()[0]
    return float(statements), float(transactions)


def top_statements(url: str, runs: int, count: int = 8) -> list[tuple[float, str]]:
    """The statements run most often in this database (it is new for each measurement)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        rows = db.execute(
            "SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) "
            "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database "
            "WHERE datname = current_database()) ORDER BY calls DESC LIMIT %s",
            (count,)).fetchall()
    return [(calls / runs, text) for calls, text in rows]


def pin(process: psutil.Process | None, core: int) -> None:
    if process is not None:
        process.cpu_affinity([core % (os.cpu_count() or 1)])


async def measure(config_dir: Path, data_dir: Path, workers: int, runs: int,
                  env: dict[str, str], pinned: bool) -> Sample:
    """Start `workers` worker processes, submit `runs` runs; runs/s and costs per run."""
    database = env.get("ORCH_DATABASE_URL")
    processes = [subprocess.Popen(
        [sys.executable, "-m", "orchestrator_mcp", "--config-dir", str(config_dir),
         "--data-dir", str(data_dir / f"w{i}" if database else data_dir),
         "--log-level", "WARNING", "worker"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(workers)]
    os.environ.update(env)
    forget_environment()  # the in-process client reads ORCH_DATABASE_URL anew
    try:
        config = load_config(config_dir)
        client_dir = data_dir / "client" if database else data_dir
        client_dir.mkdir(parents=True, exist_ok=True)
        engine = RunEngine(client_dir, Gateway({}, config.servers.gateway),
                           config.profiles.profiles, lambda _: None, lambda *_: 0.0,
                           settings=config.servers.runs)
        await asyncio.sleep(4)  # workers up and polling
        await engine.start(execute=False)
        if engine.executor:
            raise SystemExit("the client took the executor lock: no worker started")
        worker_procs = [psutil.Process(p.pid) for p in processes]
        client = psutil.Process()
        pg = postgres_processes(database) if database else []
        if pinned:
            for i, worker in enumerate(worker_procs):
                pin(worker, i)
            for process in pg:
                pin(process, (os.cpu_count() or 1) - 1)
        before = {"worker": cpu_seconds(worker_procs), "client": cpu_seconds([client]),
                  "postgres": cpu_seconds(pg)}
        counters = database_counters(database) if database else None
        started = time.perf_counter()
        ids = [(await engine.submit(f"scale run {i}")).id for i in range(runs)]
        while True:
            done = await engine.count(RunStatus.COMPLETED)
            if done >= len(ids):
                break
            if time.perf_counter() - started > 600:
                raise SystemExit(f"only {done} of {runs} runs completed in 10 minutes")
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - started
        sample = Sample(rate=runs / seconds)
        if database:
            pg = postgres_processes(database)  # backends opened meanwhile count too
            after = {"worker": cpu_seconds(worker_procs), "client": cpu_seconds([client]),
                     "postgres": cpu_seconds(pg)}
            sample.cpu = {k: max(after[k] - before[k], 0.0) / runs for k in after}
            assert counters is not None
            statements, transactions = database_counters(database)
            sample.statements = (statements - counters[0]) / runs
            sample.transactions = (transactions - counters[1]) / runs
            sample.top = top_statements(database, runs)
        await engine.stop()
        return sample
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        os.environ.pop("ORCH_DATABASE_URL", None)


def model(cpu: dict[str, float], worker_counts: list[int]) -> list[str]:
    """Runs/s predicted for N workers, each with one core of its own, PostgreSQL and the
    client on one core each: the least of what each can sustain."""
    lines = []
    pg_limit = 1 / cpu["postgres"] if cpu["postgres"] else float("inf")
    client_limit = 1 / cpu["client"] if cpu["client"] else float("inf")
    for count in worker_counts:
        workers = count / cpu["worker"] if cpu["worker"] else float("inf")
        rate = min(workers, pg_limit, client_limit)
        bound = ("workers" if rate == workers else
                 "PostgreSQL (1 core)" if rate == pg_limit else "the client (1 core)")
        lines.append(f"  {count} worker{'s' if count > 1 else ' '} on machines of their own: "
                     f"{rate:7.1f} runs/s, bound by {bound}")
    saturates = pg_limit * cpu["worker"]
    lines.append(f"  PostgreSQL (one core) saturates at {pg_limit:.0f} runs/s, "
                 f"≈ {saturates:.1f} workers' worth")
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=20,
                        help="runs one worker executes at once")
    parser.add_argument("--pin", action="store_true",
                        help="pin worker i to core i and PostgreSQL to the last core")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="orch-scale-bench-"))
    config_dir = write_config(root / "config", args.concurrency)
    base_env = {**os.environ, "LLM_PROVIDER": "scripted",
                "LLM_SCRIPT": str(config_dir / "script.yaml")}
    base_env.pop("ORCH_DATABASE_URL", None)
    counts = [int(w) for w in args.workers.split(",")]
    print(machine())
    print(f"{args.runs} runs per configuration and round (1 tool call + 2 model turns each), "
          f"{args.rounds} rounds, worker concurrency {args.concurrency}"
          f"{', pinned' if args.pin else ''}\n")

    samples: dict[str, list[Sample]] = {"sqlite": [], **{f"pg{c}": [] for c in counts}}
    with postgres.cluster("-c shared_preload_libraries=pg_stat_statements "
                          "-c pg_stat_statements.track=all") as server:
        for round_number in range(args.rounds):
            samples["sqlite"].append(await measure(
                config_dir, root / f"sqlite{round_number}", 1, args.runs, base_env,
                args.pin))
            for count in counts:
                url = postgres.create_database(server)
                import psycopg

                with psycopg.connect(url, autocommit=True) as db:
                    db.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                samples[f"pg{count}"].append(await measure(
                    config_dir, root / f"pg{count}-{round_number}", count, args.runs,
                    {**base_env, "ORCH_DATABASE_URL": url}, args.pin))

    sqlite_rates = [s.rate for s in samples["sqlite"]]
    print(f"{'configuration':<24} {'runs/s':>20} {'vs SQLite (per round)':>24}")
    print(f"{'SQLite, 1 worker (peer)':<24} {spread(sqlite_rates, 1):>20}")
    for count in counts:
        rates = [s.rate for s in samples[f"pg{count}"]]
        ratios = [r / q for r, q in zip(rates, sqlite_rates, strict=True)]
        label = f"PostgreSQL, {count} worker{'s' if count > 1 else ''}"
        print(f"{label:<24} {spread(rates, 1):>20} {spread(ratios):>24}")
    if 1 in counts:
        one = [s.rate for s in samples["pg1"]]
        for count in counts[1:]:
            ratios = [s.rate / o for s, o in zip(samples[f"pg{count}"], one, strict=True)]
            print(f"  scaling {count} vs 1 PostgreSQL worker: {spread(ratios)} "
                  f"(ideal {count}.00)")

    first = samples[f"pg{counts[0]}"]
    cpu = {k: statistics.median(s.cpu[k] for s in first) for k in first[0].cpu}
    print(f"\nper run, PostgreSQL with {counts[0]} worker(s), medians over rounds:")
    for name in ("worker", "client", "postgres"):
        print(f"  CPU {name:<9} {spread([s.cpu[name] * 1000 for s in first], 1)} ms")
    print(f"  statements (round trips) {spread([s.statements or 0 for s in first], 1)}, "
          f"transactions {spread([s.transactions or 0 for s in first], 1)}")
    print("  most frequent statements (per run, last round; includes start-up and idle "
          "polling):")
    for per_run, text in first[-1].top:
        print(f"    {per_run:6.1f}  {text}")
    print("\nscale model (one core per worker, PostgreSQL and the client one core each):")
    for line in model(cpu, sorted({*counts, 1, 2, 4, 8})):
        print(line)


if __name__ == "__main__":
    asyncio.run(main())
