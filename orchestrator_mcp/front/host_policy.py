"""Hosts' direct calls of catalog tools (call_tool, pass-through): which a human confirms.

`call_tool` is one generic tool to a host, so the host's own per-tool permission prompt
cannot tell `everything_echo` from `infrastructure_systemd_restart`. This guard asks
instead, by `gateway.host_calls` in servers.yaml (checked in this order):

    allow: [memory_*]           never confirmed
    require: [everything_get-env]  always confirmed, read-only or not
    destructive: confirm        tools marked destructive, or not read-only and without
                                annotations: confirm (ask inline) | allow | deny

Read-only tools are never asked about unless `require` names them. Asking uses the front's
one inline-approval mechanism (elicitation, or an input-required result in the 2026-07-28
era); the question shows the tool, its arguments and, where the tool has one, its dry run
(`ansible_run` -> the `ansible_check` diff). A host that cannot ask gets an error saying how
to proceed. A tool's rule is worked out once per catalog version, so a call pays one dict
lookup for the policy.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from fastmcp.server.dependencies import get_context
from fastmcp.tools import InputRequiredToolResult

from orchestrator_mcp.config.gateway import HostCallPolicy
from orchestrator_mcp.front.inline_approval import (
    accepted_answer,
    ask,
    ask_obstacle,
    input_required,
    modern,
)
from orchestrator_mcp.gateway import Catalog, CatalogTool, Gateway
from orchestrator_mcp.runs.policy import is_destructive, matching

# A tool -> its dry run, called with the same arguments to show what the call would change.
PREVIEWS = {"ansible_run": "ansible_check"}
MAX_PREVIEW_CHARS = 6000
CONFIRMATION_TTL = 600.0  # the SDK's request-state lifetime
_STATE_PREFIX = "host_call:"


class Verdict(StrEnum):
    """What became of a call that needed a decision (the audit outcome says so)."""

    ALLOWED = "allowed by policy"
    CONFIRMED = "confirmed"
    ASKED = "confirmation asked"
    DECLINED = "declined"
    DENIED = "denied by policy"
    UNASKABLE = "refused: could not ask"

    @property
    def runs(self) -> bool:
        return self in (Verdict.ALLOWED, Verdict.CONFIRMED)


@dataclass(frozen=True)
class Rule:
    action: Literal["allow", "confirm", "deny"]
    why: str


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    refusal: str | None = None  # why the call was not made, for the host
    ask: InputRequiredToolResult | None = None  # 2026-07-28: the question is the result


def rule_for(entry: CatalogTool, policy: HostCallPolicy) -> Rule | None:
    """The rule for hosts' calls of one tool; None: it runs at once, nothing to decide."""
    hints = entry.tool.annotations
    risky = is_destructive(entry)
    if pattern := matching(entry.name, policy.allow):
        return Rule("allow", f"gateway.host_calls.allow matches {pattern!r}") if risky else None
    if pattern := matching(entry.name, policy.require):
        return Rule("confirm", f"gateway.host_calls.require matches {pattern!r}")
    if not risky:
        return None
    if hints is None:
        why = "it has no annotations, so it may change anything"
    elif hints.destructive_hint:
        why = "it is marked destructive"
    else:
        why = "it is not marked read-only, so it may be destructive"
    if policy.destructive == "allow":
        return Rule("allow", f"{why}; gateway.host_calls.destructive is 'allow'")
    return Rule(policy.destructive, why)


def _how_to_proceed(name: str) -> str:
    return (f"To proceed: start a run with `run` (its risky calls wait for `approve`), or "
            f"allow the call in servers.yaml (gateway.host_calls.allow: ['{name}'], or "
            "gateway.host_calls.destructive: allow)")


class HostCallGuard:
    """Decides on hosts' calls by `gateway.host_calls`; `audit(tool, arguments, outcome,
    seconds)` records the dry runs it makes."""

    def __init__(self, gateway: Gateway, policy: HostCallPolicy,
                 audit: Callable[..., None] | None = None) -> None:
        self._gateway = gateway
        self._policy = policy
        self._audit = audit
        self._rules: dict[str, Rule | None] = {}
        self._rules_for: Catalog | None = None
        self._used: dict[str, float] = {}  # confirmations already spent -> when they expire

    def rule(self, name: str) -> Rule | None:
        """The rule for `name` in the current catalog, cached per catalog version: a dict
        lookup on the hot path. KeyError when not cached yet: then `resolve`."""
        return self._cache()[name]

    async def resolve(self, name: str) -> Rule | None:
        """The rule for `name`, found in the catalog the way the gateway finds tools
        (waiting, bounded, for a server that is connecting; UnknownTool if there is none)."""
        entry = await self._gateway.resolve_when_ready(name)
        rule = self._cache()[name] = rule_for(entry, self._policy)
        return rule

    def _cache(self) -> dict[str, Rule | None]:
        catalog = self._gateway.catalog
        if catalog is not self._rules_for:
            self._rules, self._rules_for = {}, catalog
        return self._rules

    async def decide(self, name: str, arguments: dict[str, Any], rule: Rule) -> Decision:
        if rule.action == "allow":
            return Decision(Verdict.ALLOWED)
        if rule.action == "deny":
            return Decision(Verdict.DENIED, refusal=(
                f"{name} was not called: {rule.why}, and gateway.host_calls.destructive is "
                f"'deny' in servers.yaml. {_how_to_proceed(name)}."))
        ctx = get_context()
        if ctx.request_state is not None:  # 2026-07-28: the host retried with the answer
            return self._answered(name, ctx)
        obstacle = ask_obstacle(ctx)
        if obstacle is not None:
            return Decision(Verdict.UNASKABLE, refusal=(
                f"{name} was not called: {rule.why}, so gateway.host_calls asks the host's "
                f"user to confirm it, but {obstacle}. {_how_to_proceed(name)}; or call it "
                "from a host that can ask its user"
                + (" with a token that has the 'approve' scope." if "scope" in obstacle
                   else ".")))
        question = await self._question(name, arguments, rule)
        if modern(ctx):
            state = _STATE_PREFIX + secrets.token_urlsafe(16)
            return Decision(Verdict.ASKED, ask=InputRequiredToolResult(
                input_required(question, state)))
        answer = await ask(ctx, question)
        if answer is None or not answer.approved:
            return _declined(name, answer.reason if answer else "")
        return Decision(Verdict.CONFIRMED)

    def _answered(self, name: str, ctx: Any) -> Decision:
        """The retried leg of a 2026-07-28 confirmation. The SDK has checked that the
        sealed state belongs to this very call (tool, arguments, caller) and is at most
        CONFIRMATION_TTL old; each confirmation is spent once."""
        state = ctx.request_state
        if not isinstance(state, str) or not state.startswith(_STATE_PREFIX):
            return _declined(name, "")
        answer = accepted_answer(ctx)
        if answer is None or not answer.approved:
            return _declined(name, answer.reason if answer else "")
        now = time.time()
        self._used = {s: t for s, t in self._used.items() if t > now}
        if state in self._used:
            return Decision(Verdict.DECLINED, refusal=(
                f"{name} was not called: this confirmation was already used; call it again "
                "to be asked again"))
        self._used[state] = now + CONFIRMATION_TTL
        return Decision(Verdict.CONFIRMED)

    async def _question(self, name: str, arguments: dict[str, Any], rule: Rule) -> str:
        entry = self._gateway.catalog.get(name)
        server = f" (server '{entry.server}')" if entry is not None else ""
        lines = [f"A host asks to call {name}{server} with "
                 f"{json.dumps(arguments, default=str)[:1500]}.",
                 f"Confirmation needed because {rule.why}."]
        if preview := await dry_run(self._gateway, name, arguments, self._audit):
            lines.append(preview.describe())
        lines.append("Run it?")
        return "\n".join(lines)


@dataclass(frozen=True)
class DryRun:
    """What a tool's dry run said about a call (`PREVIEWS`), cut to MAX_PREVIEW_CHARS."""

    tool: str
    failed: bool
    text: str

    def describe(self) -> str:
        return f"Dry run ({self.tool}){' FAILED' if self.failed else ''}:\n{self.text}"


async def dry_run(gateway: Gateway, name: str, arguments: dict[str, Any],
                  audit: Callable[..., None] | None = None) -> DryRun | None:
    """The dry run of `name` with the same arguments, where it has one; `audit(tool,
    arguments, outcome, seconds)` records it."""
    dry_tool = PREVIEWS.get(name)
    if dry_tool is None or dry_tool not in gateway.catalog.tools:
        return None
    started = time.perf_counter()
    outcome = "error"
    try:
        result = await gateway.call_tool(dry_tool, arguments)
        outcome = "tool_error" if result.is_error else "ok"
    except Exception as exc:  # noqa: BLE001 - the question still goes out, saying so
        return DryRun(dry_tool, failed=True, text=str(exc)[:MAX_PREVIEW_CHARS])
    finally:
        if audit is not None:
            audit(dry_tool, arguments, f"dry run; {outcome}", time.perf_counter() - started)
    structured = result.structured_content or {}
    text = structured.get("diff") if isinstance(structured.get("diff"), str) else None
    if text is None:
        text = "\n".join(getattr(c, "text", "") for c in result.content)
    if len(text) > MAX_PREVIEW_CHARS:
        text = text[:MAX_PREVIEW_CHARS] + "\n... (cut)"
    return DryRun(dry_tool, failed=bool(result.is_error), text=text)


def _declined(name: str, reason: str) -> Decision:
    because = f" ({reason})" if reason else ""
    return Decision(Verdict.DECLINED, refusal=f"{name} was not called: the user declined"
                    f"{because}")
