"""The `llm:` section of servers.yaml; environment variables fill what it leaves out.

    llm:
      provider: openai
      model: gpt-4.1-mini
      api_key: ${OPENAI_API_KEY}
      timeout: 60
      prices: {my-finetune: {input_per_mtok: 0.3, output_per_mtok: 1.2}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from orchestrator_mcp.config.base import Strict

ProviderName = Literal["openai", "ollama", "bedrock", "scripted"]
PROVIDER_NAMES: tuple[ProviderName, ...] = ("openai", "ollama", "bedrock", "scripted")


class Price(Strict):
    input_per_mtok: float = Field(ge=0, description="USD per million input tokens")
    output_per_mtok: float = Field(ge=0, description="USD per million output tokens")


class LLMSettings(Strict):
    provider: ProviderName | None = Field(
        default=None, description="else $LLM_PROVIDER, else inferred from which keys are set")
    model: str | None = Field(default=None, description="else $OPENAI_MODEL / $OLLAMA_MODEL / "
                              "$BEDROCK_MODEL_ID")
    base_url: str | None = Field(
        default=None, description="OpenAI-compatible or Ollama endpoint")
    api_key: SecretStr | None = Field(default=None, description="write ${OPENAI_API_KEY}")
    region: str | None = Field(default=None, description="Bedrock region, else $AWS_REGION")
    endpoint_url: str | None = Field(default=None, description="Bedrock endpoint override")
    script: Path | None = Field(default=None, description="the scripted provider's file")
    timeout: float = Field(default=120, gt=0, le=3600, description="seconds per request")
    max_retries: int = Field(default=3, ge=0, le=10,
                             description="retries on 429, 5xx and connection errors")
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000,
                                   description="output tokens per call, else the model's default")
    temperature: float | None = Field(default=None, ge=0, le=2)
    prices: dict[str, Price] = Field(
        default_factory=dict, description="model name → price, over the built-in table")

    @field_validator("model", "base_url", "region", "endpoint_url", "script", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # `${VAR:-}` with the variable unset gives "", which means "not set".
        return None if value == "" else value

    @field_validator("base_url", "endpoint_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError(f"{url!r} must start with http:// or https://")
        return url

    @field_validator("api_key")
    @classmethod
    def _blank_is_none(cls, key: SecretStr | None) -> SecretStr | None:
        return key if key is not None and key.get_secret_value() else None
