"""Turn gateway failures into tool errors whose text tells the host what went wrong."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from fastmcp.exceptions import ToolError
from mcp.shared.exceptions import MCPError

from orchestrator_mcp.gateway import CallTimeout, ServerUnavailable, UnknownTool


@contextlib.contextmanager
def tool_errors() -> Iterator[None]:
    try:
        yield
    except (UnknownTool, ServerUnavailable, CallTimeout) as exc:
        raise ToolError(str(exc)) from None
    except MCPError as exc:
        raise ToolError(f"downstream server refused the call: {exc.error.message}") from None
