"""Choosing a provider from the profile, the `llm:` section and the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator_mcp.config.files import ServersFile
from orchestrator_mcp.config.llm import LLMSettings
from orchestrator_mcp.config.loader import ConfigError, load_file
from orchestrator_mcp.llm import LLMNotConfigured, provider_from_settings
from tests.llm.fakes import FakeLLMServer, Reply, chat_completion, ollama_chat
from tests.llm.samples import conversation


def test_nothing_configured_says_how() -> None:
    with pytest.raises(LLMNotConfigured) as caught:
        provider_from_settings(None, env={})
    message = str(caught.value)
    for hint in ("LLM_PROVIDER=openai", "OPENAI_API_KEY", "OLLAMA_MODEL", "BEDROCK_MODEL_ID",
                 "AWS_REGION", "LLM_SCRIPT", "llm:"):
        assert hint in message


@pytest.mark.parametrize(("env", "needs"), [
    ({"LLM_PROVIDER": "openai"}, "OPENAI_API_KEY"),
    ({"LLM_PROVIDER": "ollama"}, "OLLAMA_MODEL"),
    ({"LLM_PROVIDER": "bedrock", "BEDROCK_MODEL_ID": "m"}, "AWS_REGION"),
    ({"LLM_PROVIDER": "scripted"}, "LLM_SCRIPT"),
    ({"LLM_PROVIDER": "anthropic"}, "use openai, ollama, bedrock or scripted"),
])
def test_incomplete_choices_name_what_is_missing(env: dict[str, str], needs: str) -> None:
    with pytest.raises(LLMNotConfigured, match=needs):
        provider_from_settings(None, env=env)


@pytest.mark.parametrize(("env", "name", "model"), [
    ({"OPENAI_API_KEY": "sk-x"}, "openai", "gpt-4o-mini"),
    ({"OPENAI_BASE_URL": "http://127.0.0.1:1/v1", "OPENAI_MODEL": "qwen"}, "openai", "qwen"),
    ({"OLLAMA_MODEL": "llama3.1"}, "ollama", "llama3.1"),
    ({"BEDROCK_MODEL_ID": "amazon.nova-lite-v1:0", "AWS_REGION": "eu-west-1"}, "bedrock",
     "amazon.nova-lite-v1:0"),
    ({"LLM_PROVIDER": " Ollama ", "OLLAMA_MODEL": "qwen3", "OPENAI_API_KEY": "sk-x"},
     "ollama", "qwen3"),
])
def test_environment_selection(env: dict[str, str], name: str, model: str) -> None:
    provider = provider_from_settings(None, env=env)
    assert (provider.name, provider.model) == (name, model)


def test_scripted_from_the_environment(tmp_path: Path) -> None:
    script = tmp_path / "s.yaml"
    script.write_text("- text: hi\n")
    provider = provider_from_settings(None, env={"LLM_SCRIPT": str(script)})
    assert (provider.name, provider.model) == ("scripted", "script")


async def test_env_selected_openai_compatible_server_answers() -> None:
    with FakeLLMServer(Reply(chat_completion("hello"))) as server:
        provider = provider_from_settings(None, env={"OPENAI_BASE_URL": server.url + "/v1",
                                                     "OPENAI_MODEL": "local-model"})
        completion = await provider.complete(conversation(), [])
    assert completion.text == "hello"
    assert server.requests[0].body["model"] == "local-model"


async def test_profile_override_does_not_inherit_another_providers_section() -> None:
    with FakeLLMServer(Reply(ollama_chat("from ollama"))) as ollama:
        settings = LLMSettings(provider="openai", model="gpt-4.1",
                               base_url="http://127.0.0.1:9/v1", timeout=5, max_retries=0)
        provider = provider_from_settings(settings, profile_provider="ollama",
                                          profile_model="qwen3",
                                          env={"OLLAMA_BASE_URL": ollama.url})
        completion = await provider.complete(conversation(), [])
    assert completion.text == "from ollama"
    assert ollama.requests[0].body["model"] == "qwen3"


def test_profile_model_wins_over_section_and_environment() -> None:
    settings = LLMSettings(provider="openai", model="gpt-4.1", api_key="sk-file")
    provider = provider_from_settings(settings, profile_model="gpt-4.1-nano",
                                      env={"OPENAI_MODEL": "gpt-4o"})
    assert provider.model == "gpt-4.1-nano"
    assert provider_from_settings(settings, env={"OPENAI_MODEL": "gpt-4o"}).model == "gpt-4.1"


def test_section_wins_over_llm_provider_env() -> None:
    settings = LLMSettings(provider="ollama", model="llama3.1")
    assert provider_from_settings(settings, env={"LLM_PROVIDER": "openai"}).name == "ollama"


async def test_llm_section_from_servers_yaml_with_env_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-from-env-0123456789"
    monkeypatch.setenv("TEST_LLM_KEY", key)
    path = tmp_path / "servers.yaml"
    with FakeLLMServer(Reply(chat_completion("configured"))) as server:
        path.write_text(f"""
llm:
  provider: openai
  model: my-model
  base_url: {server.url}/v1
  api_key: ${{TEST_LLM_KEY}}
  timeout: 5
  max_retries: 0
  max_tokens: 256
  prices: {{my-model: {{input_per_mtok: 1, output_per_mtok: 2}}}}
""")
        settings = load_file(path, ServersFile).llm
        assert key not in repr(settings) and key not in str(settings.model_dump())
        completion = await provider_from_settings(settings, env={}).complete(conversation(), [])
    assert completion.text == "configured"
    assert server.requests[0].headers["authorization"] == f"Bearer {key}"
    assert server.requests[0].body["max_tokens"] == 256
    assert settings.prices["my-model"].output_per_mtok == 2


def test_unset_optional_variables_mean_not_set(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    path = tmp_path / "servers.yaml"
    path.write_text("llm:\n  api_key: ${NOT_SET_KEY:-}\n  base_url: ${NOT_SET_KEY:-}\n")
    settings = load_file(path, ServersFile).llm
    assert settings.api_key is None and settings.base_url is None


@pytest.mark.parametrize(("yaml_text", "where"), [
    ("llm:\n  provider: claude\n", "llm.provider"),
    ("llm:\n  base_url: localhost:11434\n", "llm.base_url"),
    ("llm:\n  timeout: 0\n", "llm.timeout"),
    ("llm:\n  modle: x\n", "llm.modle"),
])
def test_bad_sections_name_the_key(tmp_path: Path, yaml_text: str, where: str) -> None:
    path = tmp_path / "servers.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        load_file(path, ServersFile)
