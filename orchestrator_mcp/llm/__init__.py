"""LLM providers behind one interface: OpenAI(-compatible), Ollama, Bedrock, scripted."""

from orchestrator_mcp.llm.select import provider_from_settings
from orchestrator_mcp.llm.types import (
    Completion,
    LLMError,
    LLMNotConfigured,
    LLMProvider,
    Message,
    ToolCall,
    ToolSpec,
    Usage,
)

__all__ = [
    "Completion",
    "LLMError",
    "LLMNotConfigured",
    "LLMProvider",
    "Message",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "provider_from_settings",
]
