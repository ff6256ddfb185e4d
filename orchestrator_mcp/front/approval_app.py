"""The approval card for hosts that render MCP Apps (the `io.modelcontextprotocol/ui` extension).

Such a host shows a run that waits for a human as an interactive card instead of text:

    tools/list      run, ask_agent, run_workflow, get_run, approve carry
                    _meta.ui.resourceUri = ui://orchestrator/approval-card.html
    resources/read  that URI -> one self-contained HTML page (text/html;profile=mcp-app):
                    inline script and style pinned by their hashes in its own CSP, no network
    tools/call      for a host that declared the extension, a result with a pending approval
                    also carries `approval_card` (the tool's risk hints, its dry run where it
                    has one, whether this caller may decide) in structuredContent, which the
                    host hands to the card (ui/notifications/tool-result)
    the card        approve / reject with a reason: the app->host `tools/call` of our own
                    `approve` tool, so the decision takes the host's connection and its auth

Hosts that did not declare the extension get today's results and inline questions unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

import mcp_types
from fastmcp import Context, FastMCP
from fastmcp.apps.config import UI_EXTENSION_ID, AppConfig, ResourceCSP
from fastmcp.server.middleware import Middleware, MiddlewareContext
from fastmcp.server.middleware.middleware import CallNext
from fastmcp.tools import ToolResult
from pydantic import BaseModel, Field

from orchestrator_mcp.front.host_policy import DryRun, dry_run
from orchestrator_mcp.front.scopes import current_principal
from orchestrator_mcp.gateway import Gateway

CARD_URI = "ui://orchestrator/approval-card.html"
CARD_APP = AppConfig(resource_uri=CARD_URI)
# The front tools whose result is a run that may be waiting for a human.
CARD_TOOLS = frozenset({"run", "ask_agent", "run_workflow", "get_run", "approve"})
MAX_CACHED_DRY_RUNS = 256


class RiskHints(BaseModel):
    """The tool's own MCP annotations (None: the tool does not say)."""

    read_only: bool | None = None
    destructive: bool | None = None
    idempotent: bool | None = None
    open_world: bool | None = None


class ApprovalCard(BaseModel):
    """What the card shows beside the run's pending_approval."""

    server: str | None = Field(description="the downstream server or agent of the tool")
    hints: RiskHints | None = Field(description="None: the tool is not in the catalog now")
    dry_run: DryRun | None = None
    can_decide: bool
    why_not: str | None = Field(default=None, description="why this caller cannot decide")


def shows_cards(ctx: Context | None) -> bool:
    """Whether the host renders MCP Apps: it then asks its user with the card, not inline."""
    return ctx is not None and ctx.client_supports_extension(UI_EXTENSION_ID)


def _next_hint(run_id: str) -> str:
    return (f"the user is shown an approval card for this call and decides there; do not "
            f"approve it on their behalf. Follow the run with get_run(run_id='{run_id}')")


@cache
def card_html() -> str:
    """The card's page with a CSP that allows exactly its own inline script and style."""
    page = resources.files(__package__).joinpath("approval_card.html").read_text("utf-8")

    def digest(tag: str) -> str:
        match = re.search(rf"<{tag}>(.*?)</{tag}>", page, re.DOTALL)
        assert match is not None, f"approval_card.html has no <{tag}>"
        sha = base64.b64encode(hashlib.sha256(match.group(1).encode()).digest()).decode()
        return f"'sha256-{sha}'"

    policy = (f"default-src 'none'; script-src {digest('script')}; style-src "
              f"{digest('style')}; base-uri 'none'; form-action 'none'")
    return page.replace("__CSP__", policy, 1)


def register_approval_card(mcp: FastMCP) -> None:
    @mcp.resource(CARD_URI, name="approval-card",
                  app=AppConfig(csp=ResourceCSP(), prefers_border=True))
    def approval_card() -> str:
        """The approval card MCP Apps hosts show for a run waiting for a human."""
        return card_html()


class ApprovalCards(Middleware):
    """Adds `approval_card` to results with a pending approval, for hosts that render the
    card. The dry run of a pending call is made once (its call id is the key)."""

    def __init__(self, gateway: Gateway, audit: Callable[..., None] | None) -> None:
        self._gateway = gateway
        self._audit = audit
        self._dry_runs: OrderedDict[str, asyncio.Task[DryRun | None]] = OrderedDict()

    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
                           ) -> Any:
        result = await call_next(context)
        if context.message.name not in CARD_TOOLS or not isinstance(result, ToolResult) \
                or result.is_error or not shows_cards(context.fastmcp_context):
            return result
        data = result.structured_content
        pending = data.get("pending_approval") if isinstance(data, dict) else None
        if not isinstance(pending, dict):
            return result
        card = await self._card(pending)
        shown = dict(data)
        if "next" in shown:
            shown["next"] = _next_hint(str(shown.get("run_id", "")))
        text = json.dumps(shown, default=str)  # what the model reads: the card's extras aside
        shown["approval_card"] = card.model_dump()
        return ToolResult(content=[mcp_types.TextContent(type="text", text=text)],
                          structured_content=shown, meta=result.meta)

    async def _card(self, pending: dict[str, Any]) -> ApprovalCard:
        tool = str(pending.get("tool", ""))
        entry = self._gateway.catalog.get(tool)
        hints = None
        if entry is not None:
            given = entry.tool.annotations
            hints = RiskHints(read_only=given.read_only_hint, destructive=given.destructive_hint,
                              idempotent=given.idempotent_hint,
                              open_world=given.open_world_hint) if given else RiskHints()
        principal = current_principal()
        if principal is not None and "approve" not in principal.scopes:
            return ApprovalCard(server=entry.server if entry else None, hints=hints,
                                can_decide=False,
                                why_not=f"token '{principal.name}' lacks the 'approve' scope")
        arguments = pending.get("arguments")
        preview = await self._dry_run(str(pending.get("call_id", "")), tool,
                                      arguments if isinstance(arguments, dict) else {})
        return ApprovalCard(server=entry.server if entry else None, hints=hints,
                            dry_run=preview, can_decide=True)

    async def _dry_run(self, call_id: str, tool: str, arguments: dict[str, Any]
                       ) -> DryRun | None:
        task = self._dry_runs.get(call_id)
        if task is None or (task.done() and (task.cancelled() or task.exception())):
            task = asyncio.ensure_future(dry_run(self._gateway, tool, arguments, self._audit))
            self._dry_runs[call_id] = task
            while len(self._dry_runs) > MAX_CACHED_DRY_RUNS:
                self._dry_runs.popitem(last=False)
        return await asyncio.shield(task)
