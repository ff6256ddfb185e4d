"""Signals that the host's first list request has been answered."""

from __future__ import annotations

import asyncio
from typing import Any

from fastmcp.server.middleware import Middleware, MiddlewareContext
from fastmcp.server.middleware.middleware import CallNext


class FirstRequest(Middleware):
    def __init__(self, answered: asyncio.Event) -> None:
        self._answered = answered

    async def on_list_tools(self, context: MiddlewareContext[Any],
                            call_next: CallNext[Any, Any]) -> Any:
        try:
            return await call_next(context)
        finally:
            self._answered.set()
