"""orchestrator-mcp: an MCP server that orchestrates other MCP servers."""

__version__ = "0.1.0"
