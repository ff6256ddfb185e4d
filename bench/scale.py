"""Scale-out: completed runs per second with 1, 2 and 4 `orchestrator-mcp worker` processes
sharing PostgreSQL, against one worker on the embedded SQLite files (the peer), in one run.

Each run is a scripted model (no latency) calling one in-process tool (the system agent's
`uptime`) and answering: three durable steps plus our bookkeeping, so the figure is the
orchestrator's own cost per run. Runs are submitted in one burst by a client process (an
engine that does not execute), and the clock stops when the last one has completed.

    python bench/scale.py [--runs 300] [--workers 1,2,4] [--concurrency 20]

Needs PostgreSQL's server binaries (Debian package postgresql); a throw-away cluster is
started on 127.0.0.1 and removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")

from orchestrator_mcp.agents import agent_names  # noqa: E402
from orchestrator_mcp.config import load_config  # noqa: E402
from orchestrator_mcp.config.environment import forget_environment  # noqa: E402
from orchestrator_mcp.gateway import Gateway  # noqa: E402
from orchestrator_mcp.runs.engine import RunEngine  # noqa: E402
from tests import postgres  # noqa: E402

AGENTS_OFF = {name: {"enabled": False} for name in agent_names() if name != "system"}
SCRIPT = {"scripts": [{"turns": [{"tool_calls": [{"name": "system_uptime", "arguments": {}}]},
                                 {"text": "up"}]}]}


def write_config(folder: Path, concurrency: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "servers.yaml").write_text(yaml.safe_dump({
        "servers": {}, "agents": AGENTS_OFF, "knowledge": {"enabled": False},
        "runs": {"worker_concurrency": concurrency}}))
    (folder / "script.yaml").write_text(yaml.safe_dump(SCRIPT))
    return folder


async def measure(config_dir: Path, data_dir: Path, workers: int, runs: int,
                  env: dict[str, str]) -> float:
    """Start `workers` worker processes, submit `runs` runs, return runs/s."""
    shared = "ORCH_DATABASE_URL" in env
    processes = [subprocess.Popen(
        [sys.executable, "-m", "orchestrator_mcp", "--config-dir", str(config_dir),
         "--data-dir", str(data_dir / f"w{i}" if shared else data_dir),
         "--log-level", "WARNING", "worker"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for i in range(workers)]
    os.environ.update(env)
    forget_environment()  # the in-process client reads ORCH_DATABASE_URL anew
    try:
        config = load_config(config_dir)
        client_dir = data_dir / "client" if shared else data_dir
        client_dir.mkdir(parents=True, exist_ok=True)
        engine = RunEngine(client_dir, Gateway({}, config.servers.gateway),
                           config.profiles.profiles, lambda _: None, lambda *_: 0.0,
                           settings=config.servers.runs)
        await asyncio.sleep(4)  # workers up and polling
        await engine.start(execute=False)
        if engine.executor:
            raise SystemExit("the client took the executor lock: no worker started")
        started = time.perf_counter()
        ids = [(await engine.submit(f"scale run {i}")).id for i in range(runs)]
        while True:
            done = await engine.count(_completed())
            if done >= len(ids):
                break
            if time.perf_counter() - started > 600:
                raise SystemExit(f"only {done} of {runs} runs completed in 10 minutes")
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - started
        await engine.stop()
        return runs / seconds
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()


def _completed() -> object:
    from orchestrator_mcp.runs.models import RunStatus

    return RunStatus.COMPLETED


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=20,
                        help="runs one worker executes at once")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="orch-scale-bench-"))
    config_dir = write_config(root / "config", args.concurrency)
    base_env = {**os.environ, "LLM_PROVIDER": "scripted",
                "LLM_SCRIPT": str(config_dir / "script.yaml")}
    base_env.pop("ORCH_DATABASE_URL", None)
    print(f"{args.runs} runs per configuration (1 tool call + 2 model turns each), "
          f"{os.cpu_count()} cores, worker concurrency {args.concurrency}")

    sqlite = await measure(config_dir, root / "sqlite", 1, args.runs, base_env)
    print(f"  SQLite,     1 worker : {sqlite:7.1f} runs/s  (peer)")
    os.environ.pop("ORCH_DATABASE_URL", None)
    results: dict[int, float] = {}
    with postgres.cluster() as server:
        for count in [int(w) for w in args.workers.split(",")]:
            url = postgres.create_database(server)
            env = {**base_env, "ORCH_DATABASE_URL": url}
            results[count] = await measure(config_dir, root / f"pg{count}", count,
                                           args.runs, env)
            os.environ.pop("ORCH_DATABASE_URL", None)
            print(f"  PostgreSQL, {count} worker{'s' if count > 1 else ' '}: "
                  f"{results[count]:7.1f} runs/s  ({results[count] / sqlite:.2f}x SQLite)")
    one = results.get(1)
    if one:
        for count, rate in sorted(results.items()):
            print(f"  scaling {count} vs 1 PostgreSQL worker: {rate / one:.2f}x "
                  f"(ideal {count}.00x)")


if __name__ == "__main__":
    asyncio.run(main())
