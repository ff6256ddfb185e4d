"""What MCP hosts see: a FastMCP server whose tools delegate to the gateway."""

from orchestrator_mcp.front.server import build_front

__all__ = ["build_front"]
