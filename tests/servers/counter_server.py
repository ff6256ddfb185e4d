"""A FastMCP server for tests: counts calls in a file so a test can prove what ran.

Run: python counter_server.py --count-file F [--port N]   (Streamable HTTP on 127.0.0.1
when --port is given, else stdio). It exits when its parent process goes away.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import threading
import time
from pathlib import Path

os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")

from fastmcp import FastMCP  # noqa: E402
from mcp_types import ToolAnnotations  # noqa: E402


def _exit_with_parent() -> None:
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def build(count_file: Path) -> FastMCP:
    mcp = FastMCP("counter")

    def record(name: str) -> int:
        with count_file.open("a") as f:
            f.write(name + "\n")
        return sum(1 for line in count_file.read_text().splitlines() if line == name)

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=True, idempotent_hint=True))
    def add(a: int, b: int) -> int:
        """Add two numbers (read-only)."""
        record("add")
        return a + b

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
    def bump() -> int:
        """Increment the counter (not idempotent)."""
        return record("bump")

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=True))
    async def slow(seconds: float) -> str:
        """Sleep, then answer."""
        await asyncio.sleep(seconds)
        return "done"

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
    async def slow_write(seconds: float) -> str:
        """Record a write, then take a while to answer (not idempotent)."""
        record("slow_write")
        await asyncio.sleep(seconds)
        return "written"

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True,
                                          idempotent_hint=True))
    def set_value(value: int) -> str:
        """Set the stored value (destructive, idempotent)."""
        record(f"set:{value}")
        return f"value is {value}"

    @mcp.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False,
                                          idempotent_hint=False))
    def append(tag: str) -> str:
        """Append a tag (neither read-only nor idempotent: never repeat it)."""
        record(f"tag:{tag}")
        return f"appended {tag}"

    @mcp.tool(name="weird.name with spaces")
    def weird() -> str:
        """A tool whose name is not valid for every host."""
        return "ok"

    return mcp


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count-file", type=Path, required=True)
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    _exit_with_parent()
    server = build(args.count_file)
    if args.port:
        server.run(transport="http", host="127.0.0.1", port=args.port, show_banner=False,
                   log_level="WARNING")
    else:
        server.run(show_banner=False)


if __name__ == "__main__":
    main()
