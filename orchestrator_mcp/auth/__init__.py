"""Who is calling and what they may do: principals, bearer tokens, OAuth, scopes."""

from orchestrator_mcp.auth.authenticator import Authenticator
from orchestrator_mcp.auth.scopes import (
    ROUTE_SCOPES,
    TOOL_SCOPES,
    Principal,
    local_id,
    required_route_scope,
    required_tool_scope,
)
from orchestrator_mcp.auth.tokens import TokenTable, bearer_credentials

__all__ = ["ROUTE_SCOPES", "TOOL_SCOPES", "Authenticator", "Principal", "TokenTable",
           "bearer_credentials", "local_id", "required_route_scope",
           "required_tool_scope"]
