"""The one interface every LLM provider implements. JSON-serialisable on purpose: each
completion is stored as a durable step."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field


class ToolSpec(BaseModel):
    name: str
    description: str = ""
    input_schema: dict[str, Any]


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None


class Usage(BaseModel):
    input_tokens: int = 0
    output_tokens: int = 0


class Completion(BaseModel):
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    stop_reason: Literal["end", "tool_calls", "max_tokens", "other"] = "end"
    model: str
    provider: str


class LLMError(Exception):
    """A model call failed; the message is safe to show (it never contains keys)."""


class LLMNotConfigured(LLMError):
    """No provider is configured; the message says how to configure one."""


class LLMProvider(Protocol):
    name: str
    model: str

    async def complete(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
    ) -> Completion: ...
