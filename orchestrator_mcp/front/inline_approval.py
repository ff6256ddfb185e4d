"""Asking the host's user to approve one call, inside the tool call that needs it.

One mechanism for every front tool that asks (a run waiting for approval, a host's direct
call of a destructive tool), in both protocol eras:

    handshake era   ask(ctx, question)                 -> ctx.elicit, answered in place
    2026-07-28      return input_required(question, state); the host asks its user and
                    retries the same call with the answer: accepted_answer(ctx),
                    ctx.request_state (sealed by the SDK, bound to the call and caller)

Only callers that may approve are asked: over HTTP that is a token with the `approve` scope.
Hosts that render MCP Apps are not asked here: they show the approval card (approval_app.py).
"""

from __future__ import annotations

import contextlib

from fastmcp import Context
from fastmcp.exceptions import ToolError
from mcp_types import (
    ClientCapabilities,
    ElicitationCapability,
    ElicitRequest,
    ElicitRequestFormParams,
    InputRequiredResult,
)
from pydantic import BaseModel, Field

from orchestrator_mcp.front.scopes import current_principal

ANSWER_KEY = "approval"


class ApprovalAnswer(BaseModel):
    approved: bool = Field(description="run the call as shown?")
    reason: str = Field(default="", description="optional, recorded with the decision")


def modern(ctx: Context) -> bool:
    return bool(ctx._is_modern_protocol())  # fastmcp 4.1 has no public era accessor


def ask_obstacle(ctx: Context) -> str | None:
    """Why this caller cannot be asked, or None when the host can show its user a question
    and the caller may approve."""
    principal = current_principal()
    if principal is not None and "approve" not in principal.scopes:
        return f"{principal.label} lacks the 'approve' scope"
    with contextlib.suppress(Exception):
        if ctx.session.check_client_capability(
                ClientCapabilities(elicitation=ElicitationCapability())):
            return None
    return "this host cannot ask its user (it does not support elicitation)"


def can_ask(ctx: Context) -> bool:
    return ask_obstacle(ctx) is None


def input_required(question: str, state: str) -> InputRequiredResult:
    """The 2026-07-28 way to ask: the result of this leg of the call."""
    schema = ApprovalAnswer.model_json_schema()
    schema.pop("title", None)
    request = ElicitRequest(params=ElicitRequestFormParams(
        message=question, requested_schema=schema))
    return InputRequiredResult(input_requests={ANSWER_KEY: request}, request_state=state)


def accepted_answer(ctx: Context) -> ApprovalAnswer | None:
    """The user's answer carried by a retried call (2026-07-28), or None when there is none
    or the user declined or cancelled."""
    response = (ctx.input_responses or {}).get(ANSWER_KEY)
    if response is None or getattr(response, "action", None) != "accept":
        return None
    if not can_ask(ctx):
        raise ToolError("this caller may not approve calls")
    return ApprovalAnswer.model_validate(response.content or {})


async def ask(ctx: Context, question: str) -> ApprovalAnswer | None:
    """Handshake era: ask now and wait; None when the user declined or cancelled."""
    answer = await ctx.elicit(question, ApprovalAnswer)
    return answer.data if getattr(answer, "action", None) == "accept" else None
