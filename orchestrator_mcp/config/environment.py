"""Environment variables, read in one place: one pydantic-settings model per concern.

    variable                                   read by (what wins over it)
    ORCH_DATA_DIR                              config/paths.py (--data-dir)
    ORCH_LOG_LEVEL                             cli (--log-level)
    ORCH_HTTP_TOKEN                            config/loader.py; wins over http.token
    ORCH_DATABASE_URL                          runs/engine.py; wins over runs.database_url
    LLM_PROVIDER, LLM_SCRIPT, OPENAI_API_KEY,  llm/select.py (a profile's provider and model,
    OPENAI_BASE_URL, OPENAI_MODEL,             then the llm: section); OPENAI_API_KEY and
    OLLAMA_MODEL, OLLAMA_BASE_URL,             OPENAI_BASE_URL also by the openai embedder
    BEDROCK_MODEL_ID, BEDROCK_ENDPOINT_URL,    (knowledge/embedders.py)
    AWS_REGION, AWS_DEFAULT_REGION
    ORCH_OTEL, OTEL_SDK_DISABLED,              telemetry/tracing.py
    OTEL_TRACES_EXPORTER, OTEL_SERVICE_NAME,
    OTEL_EXPORTER_OTLP_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT

`environment()` takes the process's variables once, on its first call, and every part reads
them from it; tests and callers with a mapping of their own pass it (`environment(env)`).
An empty variable counts as unset. Each concern's model is validated when it is first used,
so a bad value is reported where it matters, naming the variable and what it accepts: the
orchestrator's when a command starts (the CLI checks it first), the LLM's when a provider is
chosen (as LLMNotConfigured, like a missing one).

Not read here: `${VAR}` in servers.yaml and profiles.yaml (config/loader.py substitutes any
variable, by design), the secret-named variables the log redactor hides by name
(telemetry/logs.py), and what libraries read themselves (AWS credentials for boto3, the
OTel SDK's own OTEL_* such as OTEL_EXPORTER_OTLP_HEADERS, FASTMCP_*).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Self, get_args

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from orchestrator_mcp.config.base import check_token
from orchestrator_mcp.config.llm import PROVIDER_NAMES, ProviderName

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LOG_LEVELS: tuple[str, ...] = get_args(LogLevel)
_ON = ("1", "true", "yes", "on")


class EnvironmentVariableError(ValueError):
    """Environment variables with values their concern cannot use, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class _Variables(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], variables: Mapping[str, str]):
        self._variables = variables
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {name: value for name, value in self._variables.items() if value != ""}


class _Concern(BaseSettings):
    """One concern's variables: each field names its variable exactly (validation_alias)."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True,
                                      extra="ignore", frozen=True)

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # only the values given: `read` takes them from one snapshot

    @classmethod
    def read(cls, variables: Mapping[str, str]) -> Self:
        try:
            return cls(**_Variables(cls, variables)())
        except ValidationError as exc:
            raise EnvironmentVariableError([
                f"environment variable {'.'.join(map(str, e['loc']))}: "
                f"{e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors(include_input=False, include_url=False)]) from None


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _on(value: Any, words: tuple[str, ...] = _ON) -> Any:
    """Today's lenient reading of a switch: one of `words`, any case; anything else is off."""
    return value.strip().lower() in words if isinstance(value, str) else value


class OrchestratorEnvironment(_Concern):
    data_dir: Path | None = Field(
        default=None, validation_alias="ORCH_DATA_DIR",
        description="logs, runs, DBOS state, runbook collections (--data-dir wins)")
    log_level: LogLevel = Field(
        default="INFO", validation_alias="ORCH_LOG_LEVEL",
        description="stderr and log file level (--log-level wins)")
    http_token: SecretStr | None = Field(
        default=None, validation_alias="ORCH_HTTP_TOKEN",
        description="bearer token with every scope; wins over http.token; blank is none")
    database_url: SecretStr | None = Field(
        default=None, validation_alias="ORCH_DATABASE_URL",
        description="postgresql://… shared by every replica; wins over runs.database_url "
        "(checked by runs/database.py, which reports a bad one on /readyz and run calls)")

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value.strip().upper() not in LOG_LEVELS:
                raise ValueError(f"{value!r} is not a log level; use "
                                 f"{', '.join(LOG_LEVELS[:-1])} or {LOG_LEVELS[-1]}")
            return value.strip().upper()
        return value

    @field_validator("http_token", mode="before")
    @classmethod
    def _token(cls, value: Any) -> Any:
        value = _blank_is_none(value)
        return check_token(value) if isinstance(value, str) else value

    def database(self, configured: str | None) -> str | None:
        """The runs database: ORCH_DATABASE_URL, else `runs.database_url`."""
        return self.database_url.get_secret_value() if self.database_url else configured


class LLMEnvironment(_Concern):
    provider: ProviderName | None = Field(default=None, validation_alias="LLM_PROVIDER")
    script: Path | None = Field(default=None, validation_alias="LLM_SCRIPT")
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    openai_model: str | None = Field(default=None, validation_alias="OPENAI_MODEL")
    ollama_model: str | None = Field(default=None, validation_alias="OLLAMA_MODEL")
    ollama_base_url: str | None = Field(default=None, validation_alias="OLLAMA_BASE_URL")
    bedrock_model_id: str | None = Field(default=None, validation_alias="BEDROCK_MODEL_ID")
    bedrock_endpoint_url: str | None = Field(default=None,
                                             validation_alias="BEDROCK_ENDPOINT_URL")
    aws_region: str | None = Field(default=None, validation_alias="AWS_REGION")
    aws_default_region: str | None = Field(default=None, validation_alias="AWS_DEFAULT_REGION")

    @field_validator("provider", mode="before")
    @classmethod
    def _provider(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        name = value.strip().lower()
        if name and name not in PROVIDER_NAMES:
            raise ValueError(f"{value!r} is not an LLM provider; use "
                             f"{', '.join(PROVIDER_NAMES[:-1])} or {PROVIDER_NAMES[-1]}")
        return name or None

    @property
    def api_key(self) -> str | None:
        return self.openai_api_key.get_secret_value() if self.openai_api_key else None

    @property
    def region(self) -> str | None:
        return self.aws_region or self.aws_default_region


class TracingEnvironment(_Concern):
    orch_otel: bool = Field(default=False, validation_alias="ORCH_OTEL",
                            description="1/true/yes/on: OTLP/HTTP to the SDK's default")
    sdk_disabled: bool = Field(default=False, validation_alias="OTEL_SDK_DISABLED")
    traces_exporter: str | None = Field(default=None, validation_alias="OTEL_TRACES_EXPORTER")
    endpoint: str | None = Field(default=None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    traces_endpoint: str | None = Field(default=None,
                                        validation_alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    service_name: str | None = Field(default=None, validation_alias="OTEL_SERVICE_NAME")
    capture_content: bool = Field(
        default=False, validation_alias="OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
        description="true: spans record the goal")

    @field_validator("orch_otel", mode="before")
    @classmethod
    def _switch(cls, value: Any) -> Any:
        return _on(value)

    @field_validator("sdk_disabled", "capture_content", mode="before")
    @classmethod
    def _true(cls, value: Any) -> Any:
        return _on(value, ("true",))

    @property
    def wanted(self) -> bool:
        """Whether traces are asked for: an OTLP endpoint or ORCH_OTEL, unless the SDK is
        disabled or the traces exporter is `none`."""
        if self.sdk_disabled or (self.traces_exporter or "").strip().lower() == "none":
            return False
        return bool(self.endpoint or self.traces_endpoint or self.orch_otel)


class Environment:
    """A set of environment variables; each concern's model is made on first use."""

    def __init__(self, variables: Mapping[str, str]) -> None:
        self._variables = dict(variables)

    @cached_property
    def orchestrator(self) -> OrchestratorEnvironment:
        return OrchestratorEnvironment.read(self._variables)

    @cached_property
    def llm(self) -> LLMEnvironment:
        return LLMEnvironment.read(self._variables)

    @cached_property
    def tracing(self) -> TracingEnvironment:
        return TracingEnvironment.read(self._variables)


_process: Environment | None = None


def environment(variables: Mapping[str, str] | None = None) -> Environment:
    """The process's environment variables, taken on the first call and kept; or, given
    `variables`, an Environment of just those (not kept)."""
    global _process
    if variables is not None:
        return Environment(variables)
    if _process is None:
        _process = Environment(os.environ)
    return _process


def forget_environment() -> None:
    """Make the next `environment()` take the process's variables again (for tests and for
    code that sets variables for itself, such as bench/scale.py)."""
    global _process
    _process = None
