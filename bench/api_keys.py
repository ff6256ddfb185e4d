"""What a managed API key costs a request (`auth/keys.py`: one SELECT by prefix per request,
no cache, so a revocation holds on the next request) against a static token from
servers.yaml (a constant-time compare in memory), through the same `Authenticator` chain,
on a real SQLite file, variants interleaved in rounds.

    python bench/api_keys.py [--rounds 5] [--requests 500]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _figures import machine, spread  # noqa: E402

from orchestrator_mcp.auth import Authenticator  # noqa: E402
from orchestrator_mcp.auth.key_store import KeyStore, ManagedKeys  # noqa: E402
from orchestrator_mcp.auth.keys import KeyRequest  # noqa: E402
from orchestrator_mcp.config.http import HttpSettings  # noqa: E402
from orchestrator_mcp.runs.store import RunStore  # noqa: E402

STATIC = "static-token-for-the-bench-0123"


async def main(rounds: int, requests: int) -> None:
    print(machine())
    with tempfile.TemporaryDirectory() as folder:
        engine = RunStore(f"sqlite:///{Path(folder) / 'runs.sqlite'}").engine
        key = KeyStore(engine).create(KeyRequest(name="bench", scopes=["read"]), "bench").key
        authenticator = Authenticator.from_settings(HttpSettings(tokens=[
            {"name": "static", "token": STATIC, "scopes": ["read"]}]))

        async def database() -> object:
            return engine

        authenticator.keys = ManagedKeys(database)  # type: ignore[arg-type]
        figures: dict[str, list[float]] = {"static token": [], "managed key": []}
        for _ in range(rounds):
            for name, bearer in (("static token", STATIC), ("managed key", key)):
                started = time.perf_counter()
                for _ in range(requests):
                    assert await authenticator.principal(f"Bearer {bearer}") is not None
                figures[name].append((time.perf_counter() - started) / requests * 1000)
        extra = [k - s for k, s in zip(figures["managed key"], figures["static token"],
                                        strict=True)]
        for name, values in figures.items():
            print(f"{name}: {spread(values, 3)} ms per request")
        print(f"a managed key costs {spread(extra, 3)} ms more per request")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=500)
    options = parser.parse_args()
    asyncio.run(main(options.rounds, options.requests))
