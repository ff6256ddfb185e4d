"""What a receiver gets: the notice (one JSON object per run event), as our JSON or as a
Slack-compatible message, and the headers that sign it.

A notice is built once per delivery from the run's record and its event, and is recorded by
DBOS with the delivery (so it holds no secret: run records are redacted on their way in).
The signature covers "<timestamp>.<body>", so a receiver that refuses old timestamps
refuses a replayed request; `X-Orchestrator-Event` (<run id>:<event number>) is the same
for every attempt and every target, so a receiver can drop a repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from orchestrator_mcp.config.notifications import NotificationEvent
from orchestrator_mcp.runs.models import RunRecord

MAX_TEXT = 4000  # characters of goal, answer or error in a notice
MAX_PENDING = 8000  # characters of the pending call's JSON before its arguments are left out
SLACK_SECTION = 2900  # Slack refuses a section text over 3000 characters

_TITLES = {
    NotificationEvent.AWAITING_APPROVAL: ":raised_hand: Run waits for approval",
    NotificationEvent.COMPLETED: ":white_check_mark: Run completed",
    NotificationEvent.FAILED: ":x: Run failed",
    NotificationEvent.CANCELLED: ":no_entry_sign: Run cancelled",
}


def _clip(text: str | None, limit: int = MAX_TEXT) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[:limit - 1] + "…"


def _pending(pending: dict[str, Any] | None) -> dict[str, Any] | None:
    if pending is None or len(json.dumps(pending, default=str)) <= MAX_PENDING:
        return pending
    return {**pending, "arguments": "(too large for a notification: see the run)",
            "reason": _clip(str(pending.get("reason") or ""), 1000)}


def console_url(public_url: str | None, run_id: str) -> str | None:
    return f"{public_url}/console/runs/{quote(run_id, safe='')}" if public_url else None


def notice(record: RunRecord, seq: int, event: NotificationEvent, at: float, *,
           pending: dict[str, Any] | None, alert_rule: str | None,
           public_url: str | None) -> dict[str, Any]:
    """The JSON body: what happened to which run, with a link to its console page."""
    ended = event is not NotificationEvent.AWAITING_APPROVAL
    return {
        "event": event.value,
        "run_id": record.id,
        "seq": seq,
        "profile": record.profile,
        "status": event.value,
        "stop_reason": record.stop_reason.value if ended and record.stop_reason else None,
        "goal": _clip(record.goal),
        "answer": _clip(record.answer) if ended else None,
        "error": _clip(record.error) if ended else None,
        "pending_approval": None if ended else _pending(pending),
        "source": record.source,
        "alert_rule": alert_rule,
        "console_url": console_url(public_url, record.id),
        "at": datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds"),
    }


def _escape(text: str) -> str:
    """Slack mrkdwn's control characters, so run text cannot forge links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack(body: dict[str, Any]) -> dict[str, Any]:
    """A Slack incoming-webhook message (`text` for notifications, `blocks` to read)."""
    event = NotificationEvent(body["event"])
    title = f"{_TITLES[event]}: {body['run_id']} (profile {body['profile']})"
    lines = [f"*{_escape(title)}*", f">{_escape(_clip(body['goal'], 500) or '')}"]
    pending = body.get("pending_approval")
    if pending:
        arguments = json.dumps(pending.get("arguments"), default=str)
        lines.append(f"Tool `{_escape(str(pending.get('tool')))}` with "
                     f"`{_escape(_clip(arguments, 1000) or '')}`")
        if pending.get("reason"):
            lines.append(_escape(_clip(str(pending["reason"]), 500) or ""))
    outcome = body.get("error") or body.get("answer")
    if outcome:
        lines.append(_escape(outcome))
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {
        "type": "mrkdwn", "text": _clip("\n".join(lines), SLACK_SECTION)}}]
    if body.get("console_url"):
        blocks.append({"type": "context", "elements": [{
            "type": "mrkdwn", "text": f"<{body['console_url']}|Open the run in the console>"}]})
    text = title if not body.get("console_url") else f"{title} {body['console_url']}"
    return {"text": text, "blocks": blocks}


def encode(body: dict[str, Any], format: str) -> bytes:
    payload = slack(body) if format == "slack" else body
    # "replace": a lone surrogate a host put in a goal must not stop the delivery
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "replace")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256 over "<timestamp>.<body>"."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def headers(event_key: str, timestamp: str, body: bytes, secret: str | None) -> dict[str, str]:
    sent = {"Content-Type": "application/json", "User-Agent": "orchestrator-mcp",
            "X-Orchestrator-Event": event_key, "X-Orchestrator-Timestamp": timestamp}
    if secret:
        sent["X-Signature-256"] = signature(secret, timestamp, body)
    return sent
