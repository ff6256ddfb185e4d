"""OpenAI Chat Completions, and every server that speaks it (vLLM, LM Studio, llama.cpp)."""

from __future__ import annotations

import json
from typing import Any

from orchestrator_mcp.llm.schemas import ToolNames, clean_schema
from orchestrator_mcp.llm.transport import redact
from orchestrator_mcp.llm.types import (
    Completion,
    LLMError,
    Message,
    ToolCall,
    ToolSpec,
    Usage,
)

OPENAI_URL = "https://api.openai.com/v1"
_STOP = {"stop": "end", "tool_calls": "tool_calls", "function_call": "tool_calls",
         "length": "max_tokens"}


def to_openai_messages(messages: list[Message], names: ToolNames) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "tool":
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": m.content})
        elif m.role == "assistant" and m.tool_calls:
            out.append({"role": "assistant", "content": m.content or None, "tool_calls": [
                {"id": c.id, "type": "function",
                 "function": {"name": names.to_provider(c.name),
                              "arguments": json.dumps(c.arguments)}}
                for c in m.tool_calls]})
        else:
            out.append({"role": m.role, "content": m.content})
    return out


def to_openai_tools(tools: list[ToolSpec], names: ToolNames) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {
        "name": names.to_provider(t.name), "description": t.description[:1024],
        "parameters": clean_schema(t.input_schema)}} for t in tools]


def parse_arguments(raw: str | None, tool: str) -> dict[str, Any]:
    """The model's argument string as a dict; a malformed one is kept visible so the tool
    error tells the model what it sent."""
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {"_invalid_arguments": (raw or "")[:2000],
                "_error": f"the model sent arguments for {tool} that are not JSON"}
    return value if isinstance(value, dict) else {"value": value}


class OpenAIProvider:
    name = "openai"

    def __init__(self, model: str, *, api_key: str | None, base_url: str | None,
                 timeout: float, max_retries: int, max_tokens: int | None = None,
                 temperature: float | None = None) -> None:
        from openai import AsyncOpenAI

        self.model = model
        self._api_key = api_key
        self._official = base_url is None
        self._where = base_url or "api.openai.com"
        self._defaults = {"max_tokens": max_tokens, "temperature": temperature}
        # The client retries 408/409/429/5xx and connection errors with exponential backoff
        # and jitter, and honours Retry-After; an explicit base_url keeps it from reading
        # OPENAI_BASE_URL behind our back.
        self._client = AsyncOpenAI(api_key=api_key or "not-needed", base_url=base_url or OPENAI_URL,
                                   timeout=timeout, max_retries=max_retries)

    async def complete(self, messages: list[Message], tools: list[ToolSpec], *,
                       max_tokens: int | None = None,
                       temperature: float | None = None) -> Completion:
        import openai

        names = ToolNames([t.name for t in tools])
        kwargs: dict[str, Any] = {"model": self.model,
                                  "messages": to_openai_messages(messages, names)}
        if tools:
            kwargs["tools"] = to_openai_tools(tools, names)
        max_tokens = max_tokens if max_tokens is not None else self._defaults["max_tokens"]
        temperature = temperature if temperature is not None else self._defaults["temperature"]
        if max_tokens is not None:
            # OpenAI's newer models only take max_completion_tokens; compatible servers
            # (llama.cpp, older vLLM) only know max_tokens.
            kwargs["max_completion_tokens" if self._official else "max_tokens"] = max_tokens
        if temperature is not None:
            kwargs["temperature"] = temperature
        try:
            response = await self._client.chat.completions.create(**kwargs)
        except openai.APIStatusError as exc:
            raise LLMError(self._safe(f"{self._where} answered HTTP {exc.status_code} for "
                                      f"model {self.model}: {_message(exc)}")) from None
        except openai.APITimeoutError:
            raise LLMError(f"{self._where} did not answer in time (model {self.model})") from None
        except openai.APIConnectionError as exc:
            raise LLMError(self._safe(f"cannot reach {self._where}: {exc}")) from None
        except openai.OpenAIError as exc:
            raise LLMError(self._safe(f"call to {self._where} failed: {exc}")) from None
        if not response.choices:
            raise LLMError(f"{self._where} returned no choices for model {self.model}")
        choice = response.choices[0]
        message = choice.message
        calls = []
        for i, call in enumerate(message.tool_calls or []):
            function = getattr(call, "function", None)
            if function is None:
                continue
            calls.append(ToolCall(id=call.id or f"call_{i}",
                                  name=names.from_provider(function.name),
                                  arguments=parse_arguments(function.arguments, function.name)))
        usage = response.usage
        return Completion(
            text=message.content or "", tool_calls=calls,
            usage=Usage(input_tokens=(usage.prompt_tokens or 0) if usage else 0,
                        output_tokens=(usage.completion_tokens or 0) if usage else 0),
            stop_reason="tool_calls" if calls else _STOP.get(choice.finish_reason or "", "other"),
            model=response.model or self.model, provider=self.name)

    def _safe(self, text: str) -> str:
        return redact(text, [self._api_key])


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:500]
        if isinstance(error, str):
            return error[:500]
    return str(getattr(exc, "message", exc))[:500]
