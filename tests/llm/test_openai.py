"""OpenAIProvider through the real `openai` client against a local Chat Completions server."""

from __future__ import annotations

import json

import pytest

from orchestrator_mcp.llm import Completion, LLMError, Message, ToolCall
from orchestrator_mcp.llm.openai_provider import OpenAIProvider
from tests.llm.fakes import FakeLLMServer, Reply, chat_completion, openai_error
from tests.llm.samples import conversation, weather_tools

KEY = "sk-test-0123456789abcdefSECRET"


def provider(server: FakeLLMServer, *, timeout: float = 10, retries: int = 2,
             **kw: object) -> OpenAIProvider:
    return OpenAIProvider("fake-gpt", api_key=KEY, base_url=server.url + "/v1",
                          timeout=timeout, max_retries=retries, **kw)  # type: ignore[arg-type]


async def test_text_answer_with_usage() -> None:
    with FakeLLMServer(Reply(chat_completion("It is sunny.", prompt_tokens=21,
                                             completion_tokens=4))) as server:
        completion = await provider(server).complete(conversation(), [])
    assert completion == Completion(text="It is sunny.", tool_calls=[], usage={
        "input_tokens": 21, "output_tokens": 4}, stop_reason="end", model="fake-gpt",
        provider="openai")
    seen = server.requests[0]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.body["messages"] == [{"role": "system", "content": "You are terse."},
                                     {"role": "user", "content": "Weather in Oslo and the time?"}]
    assert "tools" not in seen.body
    # The result is what the planner stores as a durable step.
    assert Completion.model_validate_json(completion.model_dump_json()) == completion


async def test_parallel_tool_calls_and_tool_format() -> None:
    reply = chat_completion(None, [("call_a", "weather_get", '{"city": "Oslo"}'),
                                   ("call_b", "clock_now", "{}")])
    with FakeLLMServer(Reply(reply)) as server:
        completion = await provider(server).complete(conversation(), weather_tools(),
                                                     max_tokens=50, temperature=0.2)
    assert completion.stop_reason == "tool_calls"
    assert completion.tool_calls == [
        ToolCall(id="call_a", name="weather_get", arguments={"city": "Oslo"}),
        # The provider saw `clock_now`; the catalog name comes back.
        ToolCall(id="call_b", name="clock.now", arguments={})]
    body = server.requests[0].body
    assert body["max_tokens"] == 50 and body["temperature"] == 0.2
    assert body["tools"] == [
        {"type": "function", "function": {
            "name": "weather_get", "description": "Current weather for a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}},
        {"type": "function", "function": {
            "name": "clock_now", "description": "",
            "parameters": {"type": "object", "properties": {}}}}]


async def test_history_with_tool_results_is_sent_in_openai_shape() -> None:
    history = [*conversation(),
               Message(role="assistant", tool_calls=[
                   ToolCall(id="call_a", name="weather_get", arguments={"city": "Oslo"}),
                   ToolCall(id="call_b", name="clock.now")]),
               Message(role="tool", tool_call_id="call_a", name="weather_get", content="5 C"),
               Message(role="tool", tool_call_id="call_b", name="clock.now", content="12:00")]
    with FakeLLMServer(Reply(chat_completion("5 C at noon."))) as server:
        completion = await provider(server).complete(history, weather_tools())
    assert completion.text == "5 C at noon."
    sent = server.requests[0].body["messages"][2:]
    assert sent[0]["role"] == "assistant" and sent[0]["content"] is None
    assert [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in sent[0]["tool_calls"]] == [("call_a", "weather_get", {"city": "Oslo"}),
                                                 ("call_b", "clock_now", {})]
    assert sent[1:] == [{"role": "tool", "tool_call_id": "call_a", "content": "5 C"},
                        {"role": "tool", "tool_call_id": "call_b", "content": "12:00"}]


async def test_arguments_that_are_not_json_are_kept_visible() -> None:
    reply = chat_completion(None, [("", "weather_get", "{city: Oslo")])
    with FakeLLMServer(Reply(reply)) as server:
        completion = await provider(server).complete(conversation(), weather_tools())
    call = completion.tool_calls[0]
    assert call.id == "call_0"
    assert call.arguments["_invalid_arguments"] == "{city: Oslo"


async def test_length_stop_reason() -> None:
    with FakeLLMServer(Reply(chat_completion("It is", finish="length"))) as server:
        completion = await provider(server).complete(conversation(), [], max_tokens=2)
    assert completion.stop_reason == "max_tokens"


async def test_rate_limit_then_success_is_retried() -> None:
    with FakeLLMServer(Reply(openai_error("slow down", "rate_limit"), status=429,
                             headers={"retry-after-ms": "20"}),
                       Reply(chat_completion("ok"))) as server:
        completion = await provider(server).complete(conversation(), [])
    assert completion.text == "ok"
    assert len(server.requests) == 2


async def test_server_errors_until_failure_give_a_clear_error_without_the_key() -> None:
    echo = openai_error(f"upstream exploded while using key {KEY}")
    with FakeLLMServer(Reply(echo, status=500, headers={"retry-after-ms": "10"})) as server:
        with pytest.raises(LLMError) as caught:
            await provider(server, retries=2).complete(conversation(), [])
    assert len(server.requests) == 3
    message = str(caught.value)
    assert "HTTP 500" in message and "upstream exploded" in message and "fake-gpt" in message
    assert KEY not in message and "SECRET" not in message


async def test_client_error_is_not_retried() -> None:
    with FakeLLMServer(Reply(openai_error("model fake-gpt does not exist", "invalid"),
                             status=404)) as server:
        with pytest.raises(LLMError, match="HTTP 404.*does not exist"):
            await provider(server).complete(conversation(), [])
    assert len(server.requests) == 1


async def test_timeout() -> None:
    with FakeLLMServer(Reply(chat_completion("late"), delay=2)) as server:
        with pytest.raises(LLMError, match="did not answer in time"):
            await provider(server, timeout=0.3, retries=0).complete(conversation(), [])


async def test_unreachable_server(closed_port: int) -> None:
    where = f"http://127.0.0.1:{closed_port}/v1"
    slow = OpenAIProvider("m", api_key=KEY, base_url=where, timeout=5, max_retries=0)
    with pytest.raises(LLMError, match=f"cannot reach {where}"):
        await slow.complete(conversation(), [])


async def test_settings_defaults_apply_unless_the_call_overrides() -> None:
    with FakeLLMServer(Reply(chat_completion("ok"))) as server:
        configured = provider(server, max_tokens=300, temperature=0.0)
        await configured.complete(conversation(), [])
        await configured.complete(conversation(), [], max_tokens=10)
    assert server.requests[0].body["max_tokens"] == 300
    assert server.requests[0].body["temperature"] == 0.0
    assert server.requests[1].body["max_tokens"] == 10
