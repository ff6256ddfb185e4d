"""OpenAI Chat Completions, and every server that speaks it (vLLM, LM Studio, llama.cpp)."""

from __future__ import annotations

import json
from typing import Any

from orchestrator_mcp.llm.schemas import clean_schema
from orchestrator_mcp.llm.types import (
    Completion,
    LLMError,
    Message,
    ToolCall,
    ToolSpec,
    Usage,
)

_STOP = {"stop": "end", "tool_calls": "tool_calls", "function_call": "tool_calls",
         "length": "max_tokens"}


def to_openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            out.append({"role": "assistant", "content": m.content or None, "tool_calls": [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                for c in m.tool_calls]})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def to_openai_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {
        "name": t.name, "description": t.description[:1024],
        "parameters": clean_schema(t.input_schema)}} for t in tools]


def parse_arguments(raw: str | None, tool: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {"_invalid_arguments": (raw or "")[:2000],
                "_error": f"the model sent arguments for {tool} that are not JSON"}
    return value if isinstance(value, dict) else {"value": value}


class OpenAIProvider:
    name = "openai"

    def __init__(self, model: str, *, api_key: str | None, base_url: str | None,
                 timeout: float, max_retries: int) -> None:
        from openai import AsyncOpenAI

        self.model = model
        # The client retries 408/409/429/5xx and connection errors with exponential backoff
        # and honours Retry-After.
        self._client = AsyncOpenAI(api_key=api_key or "not-needed", base_url=base_url,
                                   timeout=timeout, max_retries=max_retries)
        self._where = base_url or "api.openai.com"

    async def complete(self, messages: list[Message], tools: list[ToolSpec], *,
                       max_tokens: int | None = None,
                       temperature: float | None = None) -> Completion:
        import openai

        kwargs: dict[str, Any] = {"model": self.model,
                                  "messages": to_openai_messages(messages)}
        if tools:
            kwargs["tools"] = to_openai_tools(tools)
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if temperature is not None:
            kwargs["temperature"] = temperature
        try:
            response = await self._client.chat.completions.create(**kwargs)
        except openai.APIStatusError as exc:
            raise LLMError(f"{self._where} answered HTTP {exc.status_code} for model "
                           f"{self.model}: {_message(exc)}") from None
        except openai.APITimeoutError:
            raise LLMError(f"{self._where} did not answer in time (model {self.model})") from None
        except openai.APIConnectionError as exc:
            raise LLMError(f"cannot reach {self._where}: {exc}") from None
        if not response.choices:
            raise LLMError(f"{self._where} returned no choices for model {self.model}")
        choice = response.choices[0]
        message = choice.message
        calls = [ToolCall(id=c.id, name=c.function.name,
                          arguments=parse_arguments(c.function.arguments, c.function.name))
                 for c in (message.tool_calls or []) if getattr(c, "function", None)]
        usage = response.usage
        return Completion(
            text=message.content or "", tool_calls=calls,
            usage=Usage(input_tokens=usage.prompt_tokens if usage else 0,
                        output_tokens=usage.completion_tokens if usage else 0),
            stop_reason="tool_calls" if calls else _STOP.get(choice.finish_reason or "", "other"),
            model=response.model or self.model, provider=self.name)


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
    return str(getattr(exc, "message", exc))[:500]
