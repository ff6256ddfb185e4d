"""User errors on the MCP face: one middleware for the front and the in-process servers.

A `UserError` raised by a tool (a run that cannot start, an unknown tool, a server that is
down, a knowledge request that names no collection…) becomes a tool error whose text is the
error's own; one raised while reading a resource becomes a resource error. Anything else is
fastmcp's to report (as an internal error, with its traceback in the log).

fastmcp wraps what a tool raises before middleware sees it ("Error calling tool 'x': …",
logged with a traceback), so the middleware unwraps our errors from that, and a log filter
drops fastmcp's traceback for them: a user error is answered, not a fault to log.
"""

from __future__ import annotations

import logging
from typing import Any

from fastmcp.exceptions import ResourceError, ToolError
from fastmcp.server.middleware import Middleware, MiddlewareContext
from fastmcp.server.middleware.middleware import CallNext

from orchestrator_mcp.errors import UserError


def _user_error(exc: BaseException) -> UserError | None:
    if isinstance(exc, UserError):
        return exc
    cause = exc.__cause__
    return cause if isinstance(cause, UserError) else None


class _DropUserErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and record.exc_info[1] is not None
                    and _user_error(record.exc_info[1]) is not None)


class UserErrors(Middleware):
    def __init__(self) -> None:
        from fastmcp.server import server as fastmcp_server

        drop = _DropUserErrors()
        if not any(isinstance(f, _DropUserErrors) for f in fastmcp_server.logger.filters):
            fastmcp_server.logger.addFilter(drop)

    @staticmethod
    async def _mapped(context: MiddlewareContext[Any], call_next: CallNext[Any, Any],
                      answer: type[ToolError] | type[ResourceError]) -> Any:
        try:
            return await call_next(context)
        except Exception as exc:
            error = _user_error(exc)
            if error is None:
                raise
            raise answer(str(error)) from None

    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
                           ) -> Any:
        return await self._mapped(context, call_next, ToolError)

    async def on_read_resource(self, context: MiddlewareContext[Any],
                               call_next: CallNext[Any, Any]) -> Any:
        return await self._mapped(context, call_next, ResourceError)
