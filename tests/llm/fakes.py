"""Local HTTP servers that speak the providers' wire protocols with scripted replies, so the
real `openai`, `httpx2` and `boto3` clients talk to them through our providers.

A server answers each request with the next scripted `Reply` (the last one repeats) and
records every request. It listens on 127.0.0.1 on a free port and stops with its `with`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout tests) closes the socket under a late reply


class FakeLLMServer:
    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                reply = owner._take(Seen(self.path, {k.lower(): v for k, v in self.headers.items()},
                                         json.loads(raw) if raw else None))
                if reply.delay:
                    time.sleep(reply.delay)
                data = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)

    def _take(self, seen: Seen) -> Reply:
        with self._lock:
            self.requests.append(seen)
            index = min(len(self.requests), len(self.replies)) - 1
            return self.replies[index]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


# --- OpenAI Chat Completions -------------------------------------------------------------

def chat_completion(content: str | None = None, tool_calls: list[tuple[str, str, str]] = (),
                    *, finish: str | None = None, prompt_tokens: int = 12,
                    completion_tokens: int = 5, model: str = "fake-gpt") -> dict[str, Any]:
    """tool_calls: (id, name, JSON arguments string)."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [{"id": i, "type": "function",
                                  "function": {"name": n, "arguments": a}}
                                 for i, n, a in tool_calls]
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "message": message,
                         "finish_reason": finish or ("tool_calls" if tool_calls else "stop")}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def openai_error(message: str, kind: str = "server_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": None}}


# --- Ollama /api/chat --------------------------------------------------------------------

def ollama_chat(content: str = "", tool_calls: list[tuple[str, Any]] = (), *,
                done_reason: str = "stop", prompt_eval_count: int = 30,
                eval_count: int = 7, model: str = "llama3.1") -> dict[str, Any]:
    """tool_calls: (name, arguments) — a dict, or a JSON string as some builds send."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = [{"function": {"name": n, "arguments": a}}
                                 for n, a in tool_calls]
    return {"model": model, "created_at": "2025-01-01T00:00:00Z", "message": message,
            "done": True, "done_reason": done_reason, "prompt_eval_count": prompt_eval_count,
            "eval_count": eval_count}


# --- Bedrock Converse --------------------------------------------------------------------

def converse(text: str = "", tool_uses: list[tuple[str, str, dict[str, Any]]] = (), *,
             stop_reason: str | None = None, input_tokens: int = 40,
             output_tokens: int = 9) -> dict[str, Any]:
    """tool_uses: (toolUseId, name, input)."""
    content: list[dict[str, Any]] = [{"text": text}] if text else []
    content += [{"toolUse": {"toolUseId": i, "name": n, "input": a}} for i, n, a in tool_uses]
    return {"output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop_reason or ("tool_use" if tool_uses else "end_turn"),
            "usage": {"inputTokens": input_tokens, "outputTokens": output_tokens,
                      "totalTokens": input_tokens + output_tokens},
            "metrics": {"latencyMs": 5}}


def aws_error(status: int, code: str, message: str, **headers: str) -> Reply:
    return Reply({"message": message}, status=status,
                 headers={"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/", **headers})
