"""Alertmanager webhook under sustained load: accepted/s, latency, and an audit that every
accepted notification is accounted for. Peer: a bare Starlette endpoint that parses the
JSON and answers 200 (the floor for any Python webhook), in the same run.

Mix: new groups, Alertmanager retries of the same notification, the same group firing
again (dedup), and resolutions of earlier groups. Both endpoints take the same slice of the
workload in turn, round after round (each round its own groups); figures are medians over
the rounds with their min–max, the ratio taken within each round.

    python bench/webhook.py [--notifications 3000] [--concurrency 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx2
import yaml
from _figures import machine, spread

TOKEN = "bench-token-0123456789"
FLOOR_APP = """
import json, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
async def hook(request):
    json.loads(await request.body())
    return JSONResponse({"status": "accepted"})
uvicorn.run(Starlette(routes=[Route("/webhooks/alertmanager", hook, methods=["POST"])]),
            host="127.0.0.1", port=int(__import__("sys").argv[1]), log_level="warning")
"""
WARMUP = 100  # notifications through each endpoint before the rounds, not timed
SCRIPT = {"scripts": [{"turns": [{"text": "diagnosed (scripted)"}]}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(port)


def notification(group: int, status: str, fire: int) -> dict[str, Any]:
    labels = {"alertname": "HighDiskUsage", "instance": f"host-{group}", "severity": "warning"}
    alert = {"status": status, "labels": labels, "annotations": {"summary": "disk"},
             "startsAt": f"2026-11-24T10:{fire % 60:02d}:00Z",
             "endsAt": "2026-11-24T11:00:00Z" if status == "resolved"
             else "0001-01-01T00:00:00Z",
             "generatorURL": "http://prometheus", "fingerprint": f"fp{group:06d}"}
    return {"version": "4", "groupKey": f'{{}}:{{instance="host-{group}"}}', "status": status,
            "receiver": "orchestrator", "groupLabels": {"instance": f"host-{group}"},
            "commonLabels": labels, "commonAnnotations": {"summary": "disk"},
            "externalURL": "http://am", "truncatedAlerts": 0, "alerts": [alert]}


def workload(total: int, seed: int = 7, first_group: int = 0) -> list[bytes]:
    """40% new groups, 25% retries, 20% re-fires of open groups, 15% resolutions; groups
    numbered after `first_group`."""
    rng = random.Random(seed)
    bodies: list[bytes] = []
    groups = first_group
    fires: dict[int, int] = {}
    while len(bodies) < total:
        roll = rng.random()
        if roll < 0.40 or groups == first_group:
            groups += 1
            fires[groups] = 0
            bodies.append(json.dumps(notification(groups, "firing", 0)).encode())
        elif roll < 0.65:
            bodies.append(bodies[rng.randrange(len(bodies))])
        elif roll < 0.85:
            group = rng.randint(first_group + 1, groups)
            fires[group] += 1
            bodies.append(json.dumps(notification(group, "firing", fires[group])).encode())
        else:
            group = rng.randint(first_group + 1, groups)
            bodies.append(json.dumps(notification(group, "resolved", fires[group])).encode())
    return bodies


async def blast(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, list[float],
                                                                          dict[str, int]]:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    queue = list(enumerate(bodies))

    async def sender(http: httpx2.AsyncClient) -> None:
        while queue:
            _, body = queue.pop()
            started = time.perf_counter()
            response = await http.post(url, content=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            key = response.json().get("status", str(response.status_code)) \
                if response.status_code == 200 else str(response.status_code)
            statuses[key] = statuses.get(key, 0) + 1

    limits = httpx2.Limits(max_connections=concurrency)
    async with httpx2.AsyncClient(timeout=30, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(sender(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return elapsed, sorted(latencies), statuses


def start(command: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


def audit(data: Path, timeout: float = 120) -> dict[str, int]:
    """Wait until no stored notification is unprocessed; count outcomes."""
    db = sqlite3.connect(data / "runs.sqlite")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = db.execute("select count(*) from orch_alert_notifications "
                          "where state='received'").fetchone()[0]
        if left == 0:
            break
        time.sleep(0.2)
    rows = db.execute("select coalesce(outcome, state), count(*) from "
                      "orch_alert_notifications group by 1").fetchall()
    return dict(rows)


def percentile(latencies: list[float], share: float) -> float:
    return latencies[max(int(len(latencies) * share) - 1, 0)] * 1000


async def main(args: argparse.Namespace) -> None:
    per_round = args.notifications // args.rounds
    rounds = [workload(per_round, seed=7 + r, first_group=r * per_round)
              for r in range(args.rounds)]
    base = Path(tempfile.mkdtemp(prefix="orch-webhook-bench-"))
    (base / "servers.yaml").write_text("servers: {}\n")
    (base / "profiles.yaml").write_text(yaml.safe_dump(
        {"alerts": {"rules": [{"name": "disk", "match": {"alertname": "HighDiskUsage"}}]}}))
    (base / "script.yaml").write_text(yaml.safe_dump(SCRIPT))
    env = {**os.environ, "ORCH_HTTP_TOKEN": TOKEN, "LLM_PROVIDER": "scripted",
           "LLM_SCRIPT": str(base / "script.yaml"), "FASTMCP_CHECK_FOR_UPDATES": "off"}

    floor_port, orch_port = free_port(), free_port()
    floor = start([sys.executable, "-c", FLOOR_APP, str(floor_port)], env, floor_port)
    orch = start([sys.executable, "-m", "orchestrator_mcp", "--config-dir", str(base),
                  "--data-dir", str(base / "data"), "--log-level", "WARNING", "serve",
                  "--http", "--port", str(orch_port)], env, orch_port)
    figures: dict[str, dict[str, list[float]]] = {
        name: {"rate": [], "p50": [], "p99": []} for name in ("floor", "orchestrator")}
    ratios: list[float] = []
    statuses: dict[str, int] = {}
    warmup = workload(WARMUP, seed=1, first_group=args.notifications + 1)
    try:
        # Not timed: until the server says it is ready (run engine and alert handling
        # started), then a first batch through both endpoints (first-use code paths).
        async with httpx2.AsyncClient() as client:
            deadline = time.monotonic() + 60
            while (await client.get(f"http://127.0.0.1:{orch_port}/readyz")).status_code != 200:
                if time.monotonic() > deadline:
                    raise SystemExit("serve --http did not get ready within 60 s")
                await asyncio.sleep(0.2)
        for port in (floor_port, orch_port):
            _, _, seen = await blast(f"http://127.0.0.1:{port}/webhooks/alertmanager",
                                     warmup, args.concurrency)
            if port == orch_port:
                for key, count in seen.items():
                    statuses[key] = statuses.get(key, 0) + count
        print(machine())
        print(f"{args.rounds} rounds of {per_round} notifications, {args.concurrency} "
              "concurrent senders\n")
        for bodies in rounds:
            rates = {}
            for name, port in (("floor", floor_port), ("orchestrator", orch_port)):
                elapsed, lat, seen = await blast(
                    f"http://127.0.0.1:{port}/webhooks/alertmanager", bodies,
                    args.concurrency)
                rates[name] = len(bodies) / elapsed
                figures[name]["rate"].append(rates[name])
                figures[name]["p50"].append(percentile(lat, 0.5))
                figures[name]["p99"].append(percentile(lat, 0.99))
                if name == "orchestrator":
                    for key, count in seen.items():
                        statuses[key] = statuses.get(key, 0) + count
            ratios.append(rates["orchestrator"] / rates["floor"])
        outcomes = audit(base / "data")
    finally:
        for proc in (floor, orch):
            proc.terminate()
            proc.wait(10)

    print(f"{'endpoint':<24} {'accepted/s':>22} {'p50 ms':>20} {'p99 ms':>22}")
    for name, label in (("floor", "floor: bare Starlette"), ("orchestrator", "orchestrator-mcp")):
        f = figures[name]
        print(f"{label:<24} {spread(f['rate'], 0):>22} {spread(f['p50']):>20} "
              f"{spread(f['p99']):>22}")
    unique = sum(len(set(bodies)) for bodies in rounds) + len(set(warmup))
    accepted = statuses.get("accepted", 0)
    stored = sum(outcomes.values())
    print(f"\nresponses: {statuses}")
    print(f"stored notifications: {stored} (unique bodies sent: {unique}); outcomes: {outcomes}")
    lost = accepted - stored
    rate = statistics.median(figures["orchestrator"]["rate"])
    p99 = statistics.median(figures["orchestrator"]["p99"])
    print(f"\norchestrator / floor throughput: {spread(ratios)}")
    print(f"accepted/s {rate:.0f} (target >= 500): {'PASS' if rate >= 500 else 'MISS'}")
    print(f"p99 {p99:.1f} ms (target <= 50): {'PASS' if p99 <= 50 else 'MISS'}")
    print(f"lost {lost} (target 0), unprocessed {outcomes.get('received', 0)}: "
          f"{'PASS' if lost == 0 and not outcomes.get('received') else 'MISS'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notifications", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
