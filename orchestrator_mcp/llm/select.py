"""Choosing a provider: the profile's provider/model, then the `llm:` section, then the
environment (its LLM variables, read through config/environment.py).

The section's connection fields (model, base_url, api_key, region, endpoint_url, script)
belong to the provider it names, so a profile that picks another provider does not inherit
them; timeout, retries, max_tokens and temperature apply to every provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from orchestrator_mcp.config.llm import PROVIDER_NAMES, LLMSettings
from orchestrator_mcp.llm.types import LLMNotConfigured, LLMProvider

if TYPE_CHECKING:
    from orchestrator_mcp.config.environment import LLMEnvironment

HOW_TO = (
    "no LLM provider is configured. Set one of: LLM_PROVIDER=openai with OPENAI_API_KEY "
    "(and OPENAI_MODEL, or OPENAI_BASE_URL for vLLM / LM Studio / llama.cpp); "
    "LLM_PROVIDER=ollama with OLLAMA_MODEL (OLLAMA_BASE_URL defaults to "
    "http://127.0.0.1:11434); LLM_PROVIDER=bedrock with AWS_REGION and BEDROCK_MODEL_ID; "
    "LLM_PROVIDER=scripted with LLM_SCRIPT=<file>. Or put an `llm:` section in servers.yaml."
)
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_OLLAMA_URL = "http://127.0.0.1:11434"


def _environment(env: Mapping[str, str] | None) -> LLMEnvironment:
    """The LLM variables: of the process (config/environment.py), or of `env` if given."""
    from orchestrator_mcp.config.environment import EnvironmentVariableError, environment

    try:
        return environment(env).llm
    except EnvironmentVariableError as exc:
        raise LLMNotConfigured(str(exc)) from None


def _infer(llm: LLMEnvironment) -> str | None:
    if llm.openai_api_key or llm.openai_base_url:
        return "openai"
    if llm.ollama_model:
        return "ollama"
    if llm.bedrock_model_id:
        return "bedrock"
    if llm.script:
        return "scripted"
    return None


def _choose(s: LLMSettings, profile_provider: str | None, llm: LLMEnvironment) -> str | None:
    kind = profile_provider or s.provider or llm.provider or _infer(llm)
    if kind and kind not in PROVIDER_NAMES:
        raise LLMNotConfigured(f"unknown LLM provider {kind!r} (a profile's provider); use "
                               "openai, ollama, bedrock or scripted")
    return kind or None


def chosen_provider(settings: LLMSettings | None, profile_provider: str | None = None,
                    env: Mapping[str, str] | None = None) -> str | None:
    """Which provider a profile gets, or None when nothing is configured. `env`: these
    variables instead of the process's."""
    return _choose(settings or LLMSettings(), profile_provider, _environment(env))


def provider_from_settings(
    settings: LLMSettings | None,
    *,
    profile_provider: str | None = None,
    profile_model: str | None = None,
    env: Mapping[str, str] | None = None,
) -> LLMProvider:
    """The provider for a profile; LLMNotConfigured says how to configure one. `env`: these
    variables instead of the process's."""
    s = settings or LLMSettings()
    llm = _environment(env)
    kind = _choose(s, profile_provider, llm)
    if kind is None:
        raise LLMNotConfigured(HOW_TO)
    own = s.provider in (None, kind)  # the section's connection fields are for this provider
    model = profile_model or (s.model if own else None)
    base_url = s.base_url if own else None
    common = {"timeout": s.timeout, "max_retries": s.max_retries, "max_tokens": s.max_tokens,
              "temperature": s.temperature}

    if kind == "openai":
        from orchestrator_mcp.llm.openai_provider import OpenAIProvider

        base_url = base_url or llm.openai_base_url
        api_key = (s.api_key.get_secret_value() if own and s.api_key else None) or llm.api_key
        if not api_key and not base_url:
            raise LLMNotConfigured("LLM provider openai needs OPENAI_API_KEY (or "
                                   "OPENAI_BASE_URL for a local OpenAI-compatible server)")
        return OpenAIProvider(model or llm.openai_model or DEFAULT_OPENAI_MODEL,
                              api_key=api_key, base_url=base_url, **common)
    if kind == "ollama":
        from orchestrator_mcp.llm.ollama import OllamaProvider

        model = model or llm.ollama_model
        if not model:
            raise LLMNotConfigured("LLM provider ollama needs a model: set OLLAMA_MODEL "
                                   "(e.g. llama3.1) or llm.model")
        return OllamaProvider(model, base_url=base_url or llm.ollama_base_url
                              or DEFAULT_OLLAMA_URL, **common)
    if kind == "bedrock":
        model = model or llm.bedrock_model_id
        region = (s.region if own else None) or llm.region
        if not model or not region:
            raise LLMNotConfigured("LLM provider bedrock needs BEDROCK_MODEL_ID and "
                                   "AWS_REGION (and AWS credentials the usual boto3 way)")
        try:
            from orchestrator_mcp.llm.bedrock import BedrockProvider

            return BedrockProvider(
                model, region=region,
                endpoint_url=(s.endpoint_url if own else None) or llm.bedrock_endpoint_url,
                **common)
        except ImportError:
            raise LLMNotConfigured("LLM provider bedrock needs boto3: pip install "
                                   "'orchestrator-mcp[bedrock]'") from None
    from orchestrator_mcp.llm.scripted import ScriptedProvider

    path = (s.script if own else None) or llm.script
    if path is None:
        raise LLMNotConfigured("LLM provider scripted needs LLM_SCRIPT=<file> or llm.script")
    return ScriptedProvider.from_file(path, model or "script")
