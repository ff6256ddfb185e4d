"""The `llm:` section of servers.yaml; environment variables fill what it leaves out."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from orchestrator_mcp.config.base import Strict

ProviderName = Literal["openai", "ollama", "bedrock", "scripted"]


class Price(Strict):
    input_per_mtok: float = Field(ge=0, description="USD per million input tokens")
    output_per_mtok: float = Field(ge=0, description="USD per million output tokens")


class LLMSettings(Strict):
    provider: ProviderName | None = Field(
        default=None, description="else $LLM_PROVIDER, else inferred from which keys are set")
    model: str | None = None
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible or Ollama endpoint")
    api_key: str | None = Field(default=None, description="use ${OPENAI_API_KEY}")
    region: str | None = None
    endpoint_url: str | None = Field(default=None, description="Bedrock endpoint override")
    script: Path | None = Field(default=None, description="the scripted provider's file")
    timeout: float = Field(default=120, gt=0, le=3600)
    max_retries: int = Field(default=3, ge=0, le=10)
    prices: dict[str, Price] = Field(
        default_factory=dict, description="model name → price, over the built-in table")
