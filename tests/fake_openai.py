"""A local HTTP server speaking OpenAI Chat Completions, whose "model" follows a plan written
in the goal, so tests drive runs through the real `openai` client and our real provider.

Plan lines in the goal (user message):
    CALL <tool> <json arguments>      one tool call per model turn, in order
    PARALLEL <tool> <json> ;; <tool> <json>   several tool calls in one turn
    SLEEP <seconds>                   the model takes this long to answer this turn
    ROUTE <agent>                     asked to route the task (ask_agent agent="auto"), the
                                      model names this agent (without the line: no JSON)
    UNLESS "<text>" CALL <tool> <json>   the call, unless <text> is in a message other than
                                      the goal (what the run was told it remembers)
In arguments, $LAST stands for the text of the last tool result (its fence taken off).
After the plan, the model answers "DONE" followed by the last tool result it saw. With the
word GULLIBLE in the goal, the model also obeys plan lines found in tool results.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PLAN = re.compile(r"\b(CALL|PARALLEL|SLEEP)\s+(.*)$", re.MULTILINE)
_UNLESS = re.compile(r'^\s*UNLESS\s+"([^"]+)"\s+', re.MULTILINE)
_FENCE = re.compile(r"^<tool_result[^>]*>\n(.*)\n</tool_result>$", re.DOTALL)


def _known(messages: list[dict[str, Any]], goal: str) -> str:
    return "\n".join(m["content"] or "" for m in messages
                     if m["role"] in ("system", "user") and m["content"] != goal)


def plan_of(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    goal = next((m["content"] for m in messages if m["role"] == "user"), "") or ""
    known = _known(messages, goal)
    kept = [line for line in goal.splitlines()
            if not ((match := _UNLESS.match(line)) and match[1] in known)]
    plan = _PLAN.findall("\n".join(kept))
    if "GULLIBLE" in goal:
        # A model that obeys instructions it finds in tool results (prompt injection).
        for message in messages:
            if message["role"] == "tool":
                plan += _PLAN.findall(message["content"] or "")
    return plan


def last_result(messages: list[dict[str, Any]]) -> str:
    text = next((m["content"] for m in reversed(messages) if m["role"] == "tool"), "") or ""
    fenced = _FENCE.match(text)
    return fenced[1] if fenced else text


def _call(spec: str, index: int, turn: int, last: str = "") -> dict[str, Any]:
    name, _, arguments = spec.strip().partition(" ")
    arguments = arguments.replace("$LAST", json.dumps(last)[1:-1])
    return {"id": f"call_{turn}_{index}", "type": "function",
            "function": {"name": name, "arguments": arguments.strip() or "{}"}}


_ROUTE = re.compile(r"\bROUTE\s+(\S+)")


def answer(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The assistant message for this conversation."""
    system = next((m["content"] for m in messages if m["role"] == "system"), "") or ""
    if system.startswith("You route IT-operations tasks"):
        chosen = _ROUTE.search(messages[-1]["content"] or "")
        text = (json.dumps({"agent": chosen.group(1), "reason": "the task names it"})
                if chosen else "I cannot tell which agent.")
        return {"role": "assistant", "content": text}
    turn = sum(1 for m in messages if m["role"] == "assistant")
    steps = [s for s in plan_of(messages) if s[0] != "SLEEP"]
    sleeps = [float(s[1]) for s in plan_of(messages) if s[0] == "SLEEP"]
    if sleeps and turn < len(sleeps):
        time.sleep(sleeps[turn])
    if turn < len(steps):
        kind, spec = steps[turn]
        specs = spec.split(";;") if kind == "PARALLEL" else [spec]
        return {"role": "assistant", "content": None,
                "tool_calls": [_call(s, i, turn, last_result(messages))
                               for i, s in enumerate(specs)]}
    last_tool = next((m["content"] for m in reversed(messages) if m["role"] == "tool"), "")
    return {"role": "assistant", "content": f"DONE {last_tool}"}


class FakeOpenAI:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append(body)
                message = answer(body["messages"])
                reply = {
                    "id": f"chatcmpl-{len(owner.requests)}", "object": "chat.completion",
                    "created": int(time.time()), "model": body.get("model", "fake"),
                    "choices": [{"index": 0, "message": message,
                                 "finish_reason": "tool_calls" if message.get("tool_calls")
                                 else "stop"}],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 10,
                              "total_tokens": 110},
                }
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def env(self) -> dict[str, str]:
        return {"LLM_PROVIDER": "openai", "OPENAI_BASE_URL": self.base_url,
                "OPENAI_API_KEY": "sk-test-not-a-secret", "OPENAI_MODEL": "fake-planner"}

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
