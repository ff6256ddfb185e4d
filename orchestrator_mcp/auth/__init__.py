"""Who is calling and what they may do: principals, bearer tokens, OAuth, scopes."""

from orchestrator_mcp.auth.authenticator import Authenticator
from orchestrator_mcp.auth.scopes import (
    ROUTE_SCOPES,
    TOOL_SCOPES,
    Principal,
    caller_id,
    is_public_page,
    label_of,
    local_id,
    required_route_scope,
    required_tool_scope,
    run_viewer,
)
from orchestrator_mcp.auth.tokens import TokenTable, bearer_credentials

__all__ = ["ROUTE_SCOPES", "TOOL_SCOPES", "Authenticator", "Principal", "TokenTable",
           "bearer_credentials", "caller_id", "is_public_page", "label_of", "local_id",
           "required_route_scope", "required_tool_scope", "run_viewer"]
