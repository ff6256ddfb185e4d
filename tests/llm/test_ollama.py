"""OllamaProvider through real httpx2 against a local server speaking Ollama's /api/chat."""

from __future__ import annotations

import pytest

from orchestrator_mcp.llm import LLMError, Message, ToolCall, ToolSpec
from orchestrator_mcp.llm.ollama import OllamaProvider
from tests.llm.fakes import FakeLLMServer, Reply, ollama_chat
from tests.llm.samples import conversation, weather_tools


def provider(server: FakeLLMServer, *, timeout: float = 10, retries: int = 2,
             **kw: object) -> OllamaProvider:
    return OllamaProvider("llama3.1", base_url=server.url + "/", timeout=timeout,
                          max_retries=retries, **kw)  # type: ignore[arg-type]


async def test_text_answer_with_usage() -> None:
    with FakeLLMServer(Reply(ollama_chat("Sunny.", prompt_eval_count=33,
                                         eval_count=2))) as server:
        completion = await provider(server).complete(conversation(), [], temperature=0)
    assert (completion.text, completion.stop_reason, completion.provider) == (
        "Sunny.", "end", "ollama")
    assert completion.usage.model_dump() == {"input_tokens": 33, "output_tokens": 2}
    seen = server.requests[0]
    assert seen.path == "/api/chat"
    assert seen.body["stream"] is False and seen.body["model"] == "llama3.1"
    assert seen.body["options"] == {"temperature": 0}
    assert "tools" not in seen.body


async def test_parallel_tool_calls_in_the_message() -> None:
    reply = ollama_chat("", [("weather_get", {"city": "Oslo"}),
                             ("clock_now", '{"tz": "UTC"}')])
    with FakeLLMServer(Reply(reply)) as server:
        completion = await provider(server).complete(conversation(), weather_tools(),
                                                     max_tokens=64)
    assert completion.stop_reason == "tool_calls"
    assert completion.tool_calls == [
        ToolCall(id="call_0", name="weather_get", arguments={"city": "Oslo"}),
        ToolCall(id="call_1", name="clock.now", arguments={"tz": "UTC"})]
    body = server.requests[0].body
    assert body["options"] == {"num_predict": 64}
    assert [t["function"]["name"] for t in body["tools"]] == ["weather_get", "clock_now"]
    assert body["tools"][0]["function"]["parameters"] == {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


async def test_history_and_inlined_references() -> None:
    tool = ToolSpec(name="hosts_add", description="Add a host.", input_schema={
        "type": "object", "properties": {"host": {"$ref": "#/$defs/Host"}},
        "$defs": {"Host": {"type": "object", "properties": {"name": {"type": "string"}}}}})
    history = [*conversation(),
               Message(role="assistant", tool_calls=[ToolCall(id="c1", name="hosts_add",
                                                               arguments={"host": {}})]),
               Message(role="tool", tool_call_id="c1", name="hosts_add", content="added")]
    with FakeLLMServer(Reply(ollama_chat("Done."))) as server:
        await provider(server).complete(history, [tool])
    body = server.requests[0].body
    assert body["tools"][0]["function"]["parameters"] == {
        "type": "object",
        "properties": {"host": {"type": "object", "properties": {"name": {"type": "string"}}}}}
    assert body["messages"][2:] == [
        {"role": "assistant", "content": "",
         "tool_calls": [{"function": {"name": "hosts_add", "arguments": {"host": {}}}}]},
        {"role": "tool", "content": "added", "tool_name": "hosts_add"}]


async def test_length_stop_reason() -> None:
    with FakeLLMServer(Reply(ollama_chat("It is", done_reason="length"))) as server:
        completion = await provider(server).complete(conversation(), [])
    assert completion.stop_reason == "max_tokens"


async def test_busy_then_success_is_retried_honouring_retry_after() -> None:
    with FakeLLMServer(Reply({"error": "server busy"}, status=503,
                             headers={"Retry-After": "0"}),
                       Reply({"error": "too many"}, status=429, headers={"Retry-After": "0"}),
                       Reply(ollama_chat("ok"))) as server:
        completion = await provider(server).complete(conversation(), [])
    assert completion.text == "ok"
    assert len(server.requests) == 3


async def test_server_errors_until_failure() -> None:
    with FakeLLMServer(Reply({"error": "llama runner crashed"}, status=500,
                             headers={"Retry-After": "0"})) as server:
        with pytest.raises(LLMError) as caught:
            await provider(server, retries=2).complete(conversation(), [])
    assert len(server.requests) == 3
    assert str(caught.value) == (f"Ollama at {server.url}/api/chat answered HTTP 500: "
                                 "llama runner crashed (gave up after 3 attempts)")


async def test_missing_model_says_how_to_fix() -> None:
    with FakeLLMServer(Reply({"error": "model 'llama3.1' not found"}, status=404)) as server:
        with pytest.raises(LLMError, match="ollama pull llama3.1"):
            await provider(server).complete(conversation(), [])
    assert len(server.requests) == 1


async def test_timeout() -> None:
    with FakeLLMServer(Reply(ollama_chat("late"), delay=2)) as server:
        with pytest.raises(LLMError, match="did not answer within 0.3 s"):
            await provider(server, timeout=0.3, retries=0).complete(conversation(), [])


async def test_unreachable_server(closed_port: int) -> None:
    unreachable = OllamaProvider("m", base_url=f"http://127.0.0.1:{closed_port}", timeout=5,
                                 max_retries=0)
    with pytest.raises(LLMError, match="cannot reach Ollama"):
        await unreachable.complete(conversation(), [])
