"""Ollama's native /api/chat with `tools` (no tool calls parsed out of text)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from orchestrator_mcp.llm.schemas import clean_schema
from orchestrator_mcp.llm.types import Completion, LLMError, Message, ToolCall, ToolSpec, Usage

RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


def to_ollama_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        item: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.role == "assistant" and m.tool_calls:
            item["tool_calls"] = [{"function": {"name": c.name, "arguments": c.arguments}}
                                  for c in m.tool_calls]
        if m.role == "tool" and m.name:
            item["tool_name"] = m.name
        out.append(item)
    return out


async def with_retries(attempt: Any, retries: int, what: str) -> Any:
    """Run `attempt()` (returns an httpx response); retry 408/429/5xx and connection errors
    with exponential backoff and jitter, honouring Retry-After."""
    import httpx2

    delay = 0.5
    for n in range(retries + 1):
        try:
            response = await attempt()
        except httpx2.TimeoutException:
            error = f"{what} did not answer in time"
        except httpx2.TransportError as exc:
            error = f"cannot reach {what}: {exc}"
        else:
            if response.status_code < 400:
                return response
            error = f"{what} answered HTTP {response.status_code}: {response.text[:300]}"
            if response.status_code not in RETRY_STATUSES:
                raise LLMError(error)
            after = response.headers.get("retry-after", "")
            if after.isdigit():
                delay = max(delay, min(float(after), 60.0))
        if n == retries:
            raise LLMError(f"{error} (after {retries + 1} attempts)")
        await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter
        delay = min(delay * 2, 30.0)
    raise AssertionError("unreachable")


class OllamaProvider:
    name = "ollama"

    def __init__(self, model: str, *, base_url: str, timeout: float, max_retries: int) -> None:
        self.model = model
        self._url = base_url.rstrip("/") + "/api/chat"
        self._timeout = timeout
        self._retries = max_retries

    async def complete(self, messages: list[Message], tools: list[ToolSpec], *,
                       max_tokens: int | None = None,
                       temperature: float | None = None) -> Completion:
        import httpx2

        body: dict[str, Any] = {"model": self.model, "stream": False,
                                "messages": to_ollama_messages(messages)}
        if tools:
            body["tools"] = [{"type": "function", "function": {
                "name": t.name, "description": t.description,
                "parameters": clean_schema(t.input_schema)}} for t in tools]
        options: dict[str, Any] = {}
        if max_tokens is not None:
            options["num_predict"] = max_tokens
        if temperature is not None:
            options["temperature"] = temperature
        if options:
            body["options"] = options
        async with httpx2.AsyncClient(timeout=self._timeout) as http:
            response = await with_retries(lambda: http.post(self._url, json=body),
                                          self._retries, f"Ollama at {self._url}")
        data = response.json()
        message = data.get("message") or {}
        calls = []
        for i, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function") or {}
            arguments = function.get("arguments") or {}
            calls.append(ToolCall(id=call.get("id") or f"call_{i}",
                                  name=function.get("name", ""),
                                  arguments=arguments if isinstance(arguments, dict) else {}))
        done = data.get("done_reason")
        return Completion(
            text=message.get("content") or "", tool_calls=calls,
            usage=Usage(input_tokens=data.get("prompt_eval_count") or 0,
                        output_tokens=data.get("eval_count") or 0),
            stop_reason="tool_calls" if calls else ("max_tokens" if done == "length" else "end"),
            model=data.get("model") or self.model, provider=self.name)
