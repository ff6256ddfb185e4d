"""Starlette app for --http: MCP at /mcp, health probes, metrics; bearer-token auth."""

from orchestrator_mcp.sidecar.app import build_app, build_metrics_app

__all__ = ["build_app", "build_metrics_app"]
