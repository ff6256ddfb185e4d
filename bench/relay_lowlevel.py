"""The floor for a proxied call: a minimal relay on the low-level `mcp` server package.

It lists the downstream server's tools once and forwards `tools/call` unchanged: no
namespacing, no health, no metrics. Usage: python relay_lowlevel.py <command> [args...]
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
import mcp_types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server


async def main(command: str, args: list[str]) -> None:
    params = StdioServerParameters(command=command, args=args)
    async with stdio_client(params) as (down_read, down_write), ClientSession(
        down_read, down_write
    ) as downstream:
        await downstream.initialize()
        listed = await downstream.list_tools()

        async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
            return listed

        async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> Any:
            return await downstream.call_tool(params.name, params.arguments or {})

        server: Server[Any] = Server("relay", on_list_tools=list_tools, on_call_tool=call_tool)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2:])
