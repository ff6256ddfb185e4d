"""What an idle orchestrator costs: resident memory and CPU of `serve` (stdio, the shipped
servers.yaml and profiles.yaml, nothing asked of it) and of `worker` processes looking for
queued runs every `runs.queue_poll_seconds`, against a bare FastMCP hello server (the peer).

Each variant starts, settles for --settle seconds (15: the issue's "15 s after start"), then
its RSS is read and its CPU-seconds counted over --window seconds. Variants take turns,
round after round; figures are medians over rounds with their min–max. The RSS target is
the process's own; the processes it started (serve's downstream servers from servers.yaml,
the npm reference servers under node) are shown apart. serve's first round creates the data
dir's tables (Alembic loads then, ≈ 8 MB more); later rounds find them at head.

    python bench/idle.py [--rounds 5] [--settle 15] [--window 10] [--polls 0.02,0.1,0.25]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml
from _figures import machine, spread

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
RSS_TARGET_MB = 120


def launch(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # stdin stays open (a stdio server ends when its host hangs up); nothing is sent.
    return subprocess.Popen(argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def family(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def rss_mb(processes: list[psutil.Process]) -> float:
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            pass
    return total / 2**20


def measure(argv: list[str], env: dict[str, str], settle: float, window: float
            ) -> tuple[float, float, float]:
    """(RSS MB of the process itself after `settle` s, RSS MB of the processes it started,
    CPU % over `window` s of it and of the processes it started)."""
    process = launch(argv, env)
    try:
        time.sleep(settle)
        if process.poll() is not None:
            raise SystemExit(f"{' '.join(argv)} exited with {process.returncode}")
        processes = family(process.pid)
        own, children = rss_mb(processes[:1]), rss_mb(processes[1:])
        before = cpu_seconds(processes)
        time.sleep(window)
        used = cpu_seconds(family(process.pid)) - before
        return own, children, 100 * used / window
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--settle", type=float, default=15)
    parser.add_argument("--window", type=float, default=10)
    parser.add_argument("--polls", default="0.02,0.1,0.25")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="orch-idle-bench-"))
    env = {**os.environ, "FASTMCP_CHECK_FOR_UPDATES": "off", "LLM_PROVIDER": "scripted",
           "LLM_SCRIPT": str(REPO / "examples" / "scripted-llm.yaml")}
    env.pop("ORCH_DATABASE_URL", None)

    variants: dict[str, list[str]] = {
        "hello (peer)": [PYTHON, str(REPO / "bench" / "hello_fastmcp.py")],
        "serve, shipped config": [PYTHON, "-m", "orchestrator_mcp", "--config-dir", str(REPO),
                                  "--data-dir", str(root / "serve"), "serve"],
    }
    for poll in [float(p) for p in args.polls.split(",")]:
        config = root / f"worker-{poll}"
        config.mkdir()
        (config / "servers.yaml").write_text(yaml.safe_dump({
            "servers": {}, "knowledge": {"enabled": False},
            "runs": {"queue_poll_seconds": poll}}))
        variants[f"worker, polls every {poll:g} s"] = [
            PYTHON, "-m", "orchestrator_mcp", "--config-dir", str(config),
            "--data-dir", str(config / "data"), "worker"]

    print(machine())
    print(f"{args.rounds} rounds; each variant settles {args.settle:g} s, then CPU is "
          f"counted over {args.window:g} s\n")
    rss: dict[str, list[float]] = {name: [] for name in variants}
    children: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, argv in variants.items():
            mb, children_mb, percent = measure(argv, env, args.settle, args.window)
            rss[name].append(mb)
            children[name].append(children_mb)
            cpu[name].append(percent)

    print(f"{'variant':<30} {'RSS MB':>22} {'its children RSS MB':>22} {'idle CPU %':>20}")
    for name in variants:
        print(f"{name:<30} {spread(rss[name], 1):>22} {spread(children[name], 1):>22} "
              f"{spread(cpu[name], 2):>20}")
    serve_rss = sorted(rss["serve, shipped config"])[len(rss["serve, shipped config"]) // 2]
    print(f"\nserve RSS {serve_rss:.0f} MB (target <= {RSS_TARGET_MB}): "
          f"{'PASS' if serve_rss <= RSS_TARGET_MB else 'MISS'}")


if __name__ == "__main__":
    main()
