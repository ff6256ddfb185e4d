"""The one interface every LLM provider implements. JSON-serialisable on purpose: each
completion is stored as a durable step."""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from orchestrator_mcp.errors import UserError


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


class LLMError(UserError):
    """A model call failed; the message is safe to show (it never contains keys)."""

    status = 502
    code = "llm_error"


class LLMNotConfigured(LLMError):
    """No provider is configured; the message says how to configure one."""

    status = 400
    code = "llm_not_configured"


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
