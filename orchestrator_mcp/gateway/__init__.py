"""Downstream MCP servers behind one catalog: connections, names, filters, health."""

from orchestrator_mcp.gateway.catalog import Catalog, CatalogTool
from orchestrator_mcp.gateway.connection import (
    CallRefused,
    CallTimeout,
    ServerHealth,
    ServerStatus,
    ServerUnavailable,
)
from orchestrator_mcp.gateway.gateway import Gateway, UnknownTool

__all__ = [
    "CallRefused",
    "CallTimeout",
    "Catalog",
    "CatalogTool",
    "Gateway",
    "ServerHealth",
    "ServerStatus",
    "ServerUnavailable",
    "UnknownTool",
]
