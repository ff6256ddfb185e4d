"""Choosing a provider: profile override, then the `llm:` section, then the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from orchestrator_mcp.config.llm import LLMSettings
from orchestrator_mcp.llm.types import LLMNotConfigured, LLMProvider

HOW_TO = (
    "no LLM provider is configured. Set one of: LLM_PROVIDER=openai with OPENAI_API_KEY "
    "(and OPENAI_MODEL, or OPENAI_BASE_URL for vLLM / LM Studio / llama.cpp); "
    "LLM_PROVIDER=ollama with OLLAMA_MODEL (OLLAMA_BASE_URL defaults to "
    "http://127.0.0.1:11434); LLM_PROVIDER=bedrock with AWS_REGION and BEDROCK_MODEL_ID; "
    "LLM_PROVIDER=scripted with LLM_SCRIPT=<file>. Or put an `llm:` section in servers.yaml."
)


def _infer(env: Mapping[str, str]) -> str | None:
    if env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL"):
        return "openai"
    if env.get("OLLAMA_MODEL"):
        return "ollama"
    if env.get("BEDROCK_MODEL_ID"):
        return "bedrock"
    if env.get("LLM_SCRIPT"):
        return "scripted"
    return None


def provider_from_settings(
    settings: LLMSettings | None,
    *,
    profile_provider: str | None = None,
    profile_model: str | None = None,
    env: Mapping[str, str] = os.environ,
) -> LLMProvider:
    s = settings or LLMSettings()
    kind = profile_provider or s.provider or env.get("LLM_PROVIDER") or _infer(env)
    if not kind:
        raise LLMNotConfigured(HOW_TO)
    model = profile_model or s.model
    if kind == "openai":
        from orchestrator_mcp.llm.openai_provider import OpenAIProvider

        base_url = s.base_url or env.get("OPENAI_BASE_URL")
        api_key = s.api_key or env.get("OPENAI_API_KEY")
        if not api_key and not base_url:
            raise LLMNotConfigured("LLM provider openai needs OPENAI_API_KEY (or "
                                   "OPENAI_BASE_URL for a local OpenAI-compatible server)")
        return OpenAIProvider(model or env.get("OPENAI_MODEL") or "gpt-4o-mini",
                              api_key=api_key, base_url=base_url, timeout=s.timeout,
                              max_retries=s.max_retries)
    if kind == "ollama":
        from orchestrator_mcp.llm.ollama import OllamaProvider

        model = model or env.get("OLLAMA_MODEL")
        if not model:
            raise LLMNotConfigured("LLM provider ollama needs a model: set OLLAMA_MODEL "
                                   "(e.g. llama3.1) or llm.model")
        return OllamaProvider(model, base_url=s.base_url or env.get(
            "OLLAMA_BASE_URL", "http://127.0.0.1:11434"), timeout=s.timeout,
            max_retries=s.max_retries)
    if kind == "bedrock":
        from orchestrator_mcp.llm.bedrock import BedrockProvider

        model = model or env.get("BEDROCK_MODEL_ID")
        region = s.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
        if not model or not region:
            raise LLMNotConfigured("LLM provider bedrock needs BEDROCK_MODEL_ID and "
                                   "AWS_REGION (and AWS credentials the usual boto3 way)")
        try:
            return BedrockProvider(model, region=region, endpoint_url=s.endpoint_url or env.get(
                "BEDROCK_ENDPOINT_URL"), timeout=s.timeout, max_retries=s.max_retries)
        except ImportError:
            raise LLMNotConfigured("LLM provider bedrock needs boto3: pip install "
                                   "'orchestrator-mcp[bedrock]'") from None
    if kind == "scripted":
        from orchestrator_mcp.llm.scripted import ScriptedProvider, load_script

        path = s.script or (Path(env["LLM_SCRIPT"]) if env.get("LLM_SCRIPT") else None)
        if path is None:
            raise LLMNotConfigured("LLM provider scripted needs LLM_SCRIPT=<file> or "
                                   "llm.script")
        return ScriptedProvider(load_script(path), model or "script")
    raise LLMNotConfigured(f"unknown LLM provider {kind!r}; use openai, ollama, bedrock or "
                           "scripted")
