"""BedrockProvider through real boto3 `bedrock-runtime` `converse`, with `endpoint_url` at a
local server speaking the Converse JSON. Credentials are fake, from the environment."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from orchestrator_mcp.llm import LLMError, Message, ToolCall
from orchestrator_mcp.llm.bedrock import BedrockProvider, to_converse
from orchestrator_mcp.llm.schemas import ToolNames
from tests.llm.fakes import FakeLLMServer, Reply, aws_error, converse
from tests.llm.samples import conversation, weather_tools

MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"
pytestmark = pytest.mark.usefixtures("aws_env")


def provider(server: FakeLLMServer, *, timeout: float = 10, retries: int = 2,
             **kw: object) -> BedrockProvider:
    return BedrockProvider(MODEL, region="us-east-1", endpoint_url=server.url,
                           timeout=timeout, max_retries=retries, **kw)  # type: ignore[arg-type]


async def test_text_answer_with_usage() -> None:
    with FakeLLMServer(Reply(converse("Sunny.", input_tokens=41, output_tokens=3))) as server:
        completion = await provider(server).complete(conversation(), [], max_tokens=100,
                                                     temperature=0.1)
    assert (completion.text, completion.stop_reason, completion.model) == (
        "Sunny.", "end", MODEL)
    assert completion.usage.model_dump() == {"input_tokens": 41, "output_tokens": 3}
    seen = server.requests[0]
    assert unquote(seen.path) == f"/model/{MODEL}/converse"
    assert seen.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAFAKE")
    assert seen.body == {
        "messages": [{"role": "user", "content": [{"text": "Weather in Oslo and the time?"}]}],
        "system": [{"text": "You are terse."}],
        "inferenceConfig": {"maxTokens": 100, "temperature": 0.1}}


async def test_parallel_tool_use_and_tool_config() -> None:
    reply = converse("Checking.", [("tooluse_1", "weather_get", {"city": "Oslo"}),
                                   ("tooluse_2", "clock_now", {})])
    with FakeLLMServer(Reply(reply)) as server:
        completion = await provider(server).complete(conversation(), weather_tools())
    assert completion.stop_reason == "tool_calls" and completion.text == "Checking."
    assert completion.tool_calls == [
        ToolCall(id="tooluse_1", name="weather_get", arguments={"city": "Oslo"}),
        ToolCall(id="tooluse_2", name="clock.now", arguments={})]
    assert server.requests[0].body["toolConfig"] == {"tools": [
        {"toolSpec": {"name": "weather_get", "description": "Current weather for a city.",
                      "inputSchema": {"json": {"type": "object",
                                               "properties": {"city": {"type": "string"}},
                                               "required": ["city"]}}}},
        # Converse needs a non-empty description.
        {"toolSpec": {"name": "clock_now", "description": "clock.now",
                      "inputSchema": {"json": {"type": "object", "properties": {}}}}}]}


async def test_tool_results_are_one_user_turn() -> None:
    history = [*conversation(),
               Message(role="assistant", content="Checking.", tool_calls=[
                   ToolCall(id="tooluse_1", name="weather_get", arguments={"city": "Oslo"}),
                   ToolCall(id="tooluse_2", name="clock.now")]),
               Message(role="tool", tool_call_id="tooluse_1", content="5 C"),
               Message(role="tool", tool_call_id="tooluse_2", content="")]
    with FakeLLMServer(Reply(converse("5 C at noon."))) as server:
        completion = await provider(server).complete(history, weather_tools())
    assert completion.text == "5 C at noon."
    assert server.requests[0].body["messages"][1:] == [
        {"role": "assistant", "content": [
            {"text": "Checking."},
            {"toolUse": {"toolUseId": "tooluse_1", "name": "weather_get",
                         "input": {"city": "Oslo"}}},
            {"toolUse": {"toolUseId": "tooluse_2", "name": "clock_now", "input": {}}}]},
        {"role": "user", "content": [
            {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "5 C"}]}},
            {"toolResult": {"toolUseId": "tooluse_2", "content": [{"text": "(empty)"}]}}]}]


def test_without_tools_earlier_tool_blocks_become_text() -> None:
    history = [Message(role="user", content="go"),
               Message(role="assistant", tool_calls=[ToolCall(id="t1", name="a_b",
                                                              arguments={"x": 1})]),
               Message(role="tool", tool_call_id="t1", name="a_b", content="42"),
               Message(role="user", content="now answer")]
    system, messages = to_converse(history, ToolNames([]), with_tools=False)
    assert system == []
    assert messages == [
        {"role": "user", "content": [{"text": "go"}]},
        {"role": "assistant", "content": [{"text": '[called a_b {"x": 1}]'}]},
        {"role": "user", "content": [{"text": "[result of a_b]\n42"}, {"text": "now answer"}]}]


async def test_throttling_then_success_is_retried() -> None:
    with FakeLLMServer(aws_error(429, "ThrottlingException", "Too many requests",
                                 **{"Retry-After": "0"}),
                       aws_error(503, "ServiceUnavailableException", "busy",
                                 **{"Retry-After": "0"}),
                       Reply(converse("ok"))) as server:
        completion = await provider(server).complete(conversation(), [])
    assert completion.text == "ok"
    assert len(server.requests) == 3


async def test_server_errors_until_failure() -> None:
    with FakeLLMServer(aws_error(500, "InternalServerException", "model crashed",
                                 **{"Retry-After": "0"})) as server:
        with pytest.raises(LLMError) as caught:
            await provider(server, retries=1).complete(conversation(), [])
    # botocore's own retries are off, so each attempt is one of ours.
    assert len(server.requests) == 2
    message = str(caught.value)
    assert "InternalServerException: model crashed" in message
    assert "gave up after 2 attempts" in message
    assert "fake-secret" not in message and "AKIAFAKE" not in message


async def test_access_denied_is_not_retried_and_says_how_to_fix() -> None:
    with FakeLLMServer(aws_error(403, "AccessDeniedException",
                                 "You don't have access to the model")) as server:
        with pytest.raises(LLMError, match="enable access to this model"):
            await provider(server).complete(conversation(), [])
    assert len(server.requests) == 1


async def test_timeout() -> None:
    with FakeLLMServer(Reply(converse("late"), delay=2)) as server:
        with pytest.raises(LLMError, match="did not answer within 0.3 s"):
            await provider(server, timeout=0.3, retries=0).complete(conversation(), [])
    assert len(server.requests) == 1


async def test_unreachable_endpoint(closed_port: int) -> None:
    unreachable = BedrockProvider(MODEL, region="us-east-1",
                                  endpoint_url=f"http://127.0.0.1:{closed_port}", timeout=5,
                                  max_retries=0)
    with pytest.raises(LLMError, match="cannot reach Bedrock"):
        await unreachable.complete(conversation(), [])
