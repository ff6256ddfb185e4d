"""Starlette app for --http: MCP at /mcp, health probes, metrics; bearer-token auth."""

from orchestrator_mcp.sidecar.app import Principal, build_app, is_loopback, token_table

__all__ = ["Principal", "build_app", "is_loopback", "token_table"]
