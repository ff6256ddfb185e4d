"""Ollama's native /api/chat with `tools` (no tool calls parsed out of text).

httpx2 is the HTTP client: fastmcp and openai already depend on it.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator_mcp.llm.schemas import ToolNames, clean_schema, inline_refs
from orchestrator_mcp.llm.transport import (
    RETRY_STATUSES,
    Transient,
    redact,
    retry_after_seconds,
    with_retries,
)
from orchestrator_mcp.llm.types import Completion, LLMError, Message, ToolCall, ToolSpec, Usage

DEFAULT_URL = "http://127.0.0.1:11434"


def to_ollama_messages(messages: list[Message], names: ToolNames) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        item: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.role == "assistant" and m.tool_calls:
            item["tool_calls"] = [{"function": {"name": names.to_provider(c.name),
                                                "arguments": c.arguments}}
                                  for c in m.tool_calls]
        if m.role == "tool" and m.name:
            item["tool_name"] = names.to_provider(m.name)
        out.append(item)
    return out


def to_ollama_tools(tools: list[ToolSpec], names: ToolNames) -> list[dict[str, Any]]:
    # Ollama drops $defs, so references are inlined for the model to see the shapes.
    return [{"type": "function", "function": {
        "name": names.to_provider(t.name), "description": t.description,
        "parameters": inline_refs(clean_schema(t.input_schema))}} for t in tools]


def _arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw or "{}")
        except json.JSONDecodeError:
            return {"_invalid_arguments": raw[:2000], "_error": "arguments are not JSON"}
    return raw if isinstance(raw, dict) else {}


class OllamaProvider:
    name = "ollama"

    def __init__(self, model: str, *, base_url: str = DEFAULT_URL, timeout: float,
                 max_retries: int, max_tokens: int | None = None,
                 temperature: float | None = None) -> None:
        self.model = model
        self._url = base_url.rstrip("/") + "/api/chat"
        self._timeout = timeout
        self._retries = max_retries
        self._defaults = {"num_predict": max_tokens, "temperature": temperature}

    async def complete(self, messages: list[Message], tools: list[ToolSpec], *,
                       max_tokens: int | None = None,
                       temperature: float | None = None) -> Completion:
        import httpx2

        names = ToolNames([t.name for t in tools])
        body: dict[str, Any] = {"model": self.model, "stream": False,
                                "messages": to_ollama_messages(messages, names)}
        if tools:
            body["tools"] = to_ollama_tools(tools, names)
        asked = {"num_predict": max_tokens, "temperature": temperature}
        options = {k: v if v is not None else self._defaults[k] for k, v in asked.items()}
        options = {k: v for k, v in options.items() if v is not None}
        if options:
            body["options"] = options
        where = f"Ollama at {self._url}"

        async def attempt() -> dict[str, Any]:
            try:
                response = await http.post(self._url, json=body)
            except httpx2.TimeoutException:
                raise Transient(f"{where} did not answer within {self._timeout:g} s") from None
            except httpx2.TransportError as exc:
                raise Transient(redact(f"cannot reach {where}: {exc}")) from None
            if response.status_code >= 400:
                error = _error_text(response)
                if response.status_code == 404 and "not found" in error:
                    raise LLMError(f"{where}: {error} — fix: `ollama pull {self.model}` "
                                   "or set OLLAMA_MODEL to a model it has")
                message = redact(f"{where} answered HTTP {response.status_code}: {error}")
                if response.status_code in RETRY_STATUSES:
                    raise Transient(message, retry_after_seconds(response.headers))
                raise LLMError(message)
            try:
                return response.json()
            except ValueError:
                raise LLMError(f"{where} answered with something that is not JSON") from None

        timeout = httpx2.Timeout(self._timeout, connect=min(self._timeout, 10.0))
        async with httpx2.AsyncClient(timeout=timeout) as http:
            data = await with_retries(attempt, self._retries)
        message = data.get("message") or {}
        calls = []
        for i, call in enumerate(message.get("tool_calls") or []):
            function = call.get("function") or {}
            calls.append(ToolCall(id=call.get("id") or f"call_{i}",
                                  name=names.from_provider(function.get("name", "")),
                                  arguments=_arguments(function.get("arguments"))))
        done = data.get("done_reason")
        return Completion(
            text=message.get("content") or "", tool_calls=calls,
            usage=Usage(input_tokens=data.get("prompt_eval_count") or 0,
                        output_tokens=data.get("eval_count") or 0),
            stop_reason="tool_calls" if calls else ("max_tokens" if done == "length" else "end"),
            model=data.get("model") or self.model, provider=self.name)


def _error_text(response: Any) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    return str(error or response.text)[:300]
