"""Calling an in-process FastMCP server the way hosts do, and reading what came back."""

from __future__ import annotations

from typing import Any

from fastmcp import Client


async def call(server: Any, tool: str, **arguments: Any) -> Any:
    async with Client(server) as client:
        return await client.call_tool_mcp(tool, arguments)


def data(result: Any) -> Any:
    """The structured result of a successful call (unwrapped when it is a bare value)."""
    assert not result.is_error, result.content
    content = result.structured_content
    return content["result"] if set(content) == {"result"} else content


def error(result: Any) -> str:
    """The message of a failed call."""
    assert result.is_error, result.structured_content
    return result.content[0].text
