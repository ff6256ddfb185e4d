"""The composition root: builds the parts from the configuration, in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastmcp import FastMCP

from orchestrator_mcp.config import Config, ProfileConfig
from orchestrator_mcp.front import build_front
from orchestrator_mcp.gateway import Gateway
from orchestrator_mcp.runs.engine import RunEngine


@dataclass
class Application:
    config: Config
    data_dir: Path
    gateway: Gateway
    engine: RunEngine
    front: FastMCP


class ProviderCache:
    """One LLM provider per (provider, model) choice; built on first use."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._providers: dict[tuple[str | None, str | None], Any] = {}

    def __call__(self, profile: ProfileConfig) -> Any:
        key = (profile.provider, profile.model)
        if key not in self._providers:
            from orchestrator_mcp.llm import provider_from_settings

            self._providers[key] = provider_from_settings(
                getattr(self._config.servers, "llm", None),
                profile_provider=profile.provider, profile_model=profile.model,
            )
        return self._providers[key]


def cost_of(provider: str, model: str, input_tokens: int, output_tokens: int) -> float | None:
    from orchestrator_mcp.llm.pricing import cost_usd

    return cost_usd(provider, model, input_tokens, output_tokens)


def build_application(config: Config, data_dir: Path, log_dir: Path | None) -> Application:
    settings = config.servers.gateway
    gateway = Gateway(config.servers.servers, settings, log_dir)
    engine = RunEngine(data_dir, gateway, config.profiles.profiles, ProviderCache(config),
                       cost_of)
    front = build_front(gateway, settings, engine)
    return Application(config, data_dir, gateway, engine, front)
