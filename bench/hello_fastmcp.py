"""Peers for the benchmark: a bare FastMCP server, or fastmcp's own proxy.

    python hello_fastmcp.py                      one `hello` tool over stdio
    python hello_fastmcp.py --proxy CMD [ARGS]   create_proxy in front of a stdio server
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")

from fastmcp import FastMCP  # noqa: E402
from fastmcp.client.transports import StdioTransport  # noqa: E402
from fastmcp.server import create_proxy  # noqa: E402


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--proxy":
        # Pin the backend's era (mode="auto"): by default the proxy mirrors the front's
        # era and lists zero tools of server-everything (DESIGN.md).
        backend = StdioTransport(sys.argv[2], sys.argv[3:])
        create_proxy(backend, mode="auto", name="fastmcp-proxy").run(show_banner=False)
        return
    server = FastMCP("hello")

    @server.tool
    def hello(name: str = "world") -> str:
        return f"hello {name}"

    server.run(show_banner=False)


if __name__ == "__main__":
    main()
