"""The scripted provider (files and in-memory scripts) and the price table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator_mcp.config.llm import Price
from orchestrator_mcp.llm import Completion, LLMError, Message, ToolCall
from orchestrator_mcp.llm.pricing import cost_usd
from orchestrator_mcp.llm.scripted import ScriptedProvider, ScriptFile

SCRIPT = """
scripts:
  - when: disk
    turns:
      - tool_calls:
          - {name: system_disk_usage, arguments: {path: /}}
          - {name: system_mounts, id: mounts-1}
      - when: "9"
        text: "The root volume is over 90% full."
      - text: "Disk usage is fine."
  - turns:
      - text: "I only know about disks."
"""


async def play(provider: ScriptedProvider, goal: str, tool_results: list[str]) -> list[Completion]:
    """Drive the provider as the planner does, feeding `tool_results` in order."""
    messages = [Message(role="user", content=goal)]
    results = iter(tool_results)
    out = []
    for _ in range(6):
        completion = await provider.complete(messages, [])
        out.append(completion)
        if not completion.tool_calls:
            return out
        messages.append(Message(role="assistant", content=completion.text,
                                tool_calls=completion.tool_calls))
        for call in completion.tool_calls:
            messages.append(Message(role="tool", tool_call_id=call.id, name=call.name,
                                    content=next(results)))
    return out


async def test_yaml_script_picks_by_goal_and_by_tool_result(tmp_path: Path) -> None:
    path = tmp_path / "script.yaml"
    path.write_text(SCRIPT)
    provider = ScriptedProvider.from_file(path)
    full = await play(provider, "Check DISK space on web-1", ["93%", "/ ext4"])
    assert full[0].tool_calls == [
        ToolCall(id="call_0_0", name="system_disk_usage", arguments={"path": "/"}),
        ToolCall(id="mounts-1", name="system_mounts", arguments={})]
    assert full[0].stop_reason == "tool_calls" and full[0].provider == "scripted"
    # The latest tool message is "/ ext4": no "9" in it, so the second turn is skipped.
    assert full[-1].text == "Disk usage is fine."
    assert [c.text for c in await play(provider, "disk", ["12%", "93% of inodes"])][-1] == (
        "The root volume is over 90% full.")
    assert [c.text for c in await play(provider, "hello", [])] == ["I only know about disks."]


async def test_same_conversation_same_answer_across_instances() -> None:
    turns = [{"tool_calls": [{"name": "a"}]}, {"tool_calls": [{"name": "b"}]}, {"text": "end"}]
    messages = [Message(role="user", content="go"),
                Message(role="assistant", tool_calls=[ToolCall(id="call_0_0", name="a")]),
                Message(role="tool", tool_call_id="call_0_0", content="ok")]
    first = await ScriptedProvider(turns).complete(messages, [])
    after_restart = await ScriptedProvider(turns).complete(messages, [])
    assert first == after_restart
    assert first.tool_calls == [ToolCall(id="call_1_0", name="b")]


async def test_after_the_last_turn_the_final_text_repeats() -> None:
    provider = ScriptedProvider({"turns": [{"tool_calls": [{"name": "a"}]}, {"text": "bye"}]})
    messages = [Message(role="user", content="go")] + [
        Message(role="assistant", content="x")] * 5
    completion = await provider.complete(messages, [])
    assert (completion.text, completion.tool_calls) == ("bye", [])
    only_calls = ScriptedProvider([{"tool_calls": [{"name": "a"}]}])
    assert (await only_calls.complete(messages, [])).text == "(end of script)"


async def test_json_script_file(tmp_path: Path) -> None:
    path = tmp_path / "script.json"
    path.write_text(json.dumps([{"text": "from json"}]))
    completion = await ScriptedProvider.from_file(path, "demo").complete(
        [Message(role="user", content="x")], [])
    assert (completion.text, completion.model) == ("from json", "demo")


def test_the_bench_shape_still_validates() -> None:
    script = ScriptFile.model_validate({"scripts": [{"turns": [{"text": "done"}]}]})
    assert ScriptedProvider(script).model == "script"


@pytest.mark.parametrize(("text", "error"), [
    ("scripts: []", "scripts: List should have at least 1 item"),
    ("- {}", "a turn needs `text` or `tool_calls`"),
    ("- {txt: hi}", "txt: Extra inputs are not permitted"),
    ("- text: [unclosed", "not valid YAML or JSON"),
])
def test_bad_script_files_say_where(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(LLMError, match=error.replace("[", r"\[")):
        ScriptedProvider.from_file(path)


def test_missing_script_file(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match="cannot read the LLM script"):
        ScriptedProvider.from_file(tmp_path / "nope.yaml")


@pytest.mark.parametrize(("provider", "model", "expected"), [
    ("openai", "gpt-4o-mini", 0.15 + 0.60),
    ("openai", "gpt-4o-mini-2024-07-18", 0.15 + 0.60),
    ("openai", "gpt-4o", 2.50 + 10.00),
    ("openai", "gpt-4.1-nano", 0.10 + 0.40),
    ("bedrock", "us.anthropic.claude-3-5-sonnet-20241022-v2:0", 3.00 + 15.00),
    ("bedrock", "anthropic.claude-3-5-haiku-20241022-v1:0", 0.80 + 4.00),
    ("ollama", "llama3.1", 0.0),
    ("scripted", "script", 0.0),
    ("openai", "qwen2.5-coder-local", None),
])
def test_cost_of_a_million_tokens_each_way(provider: str, model: str,
                                           expected: float | None) -> None:
    cost = cost_usd(provider, model, 1_000_000, 1_000_000)
    assert cost == (None if expected is None else pytest.approx(expected))


def test_prices_from_settings_extend_and_override_the_table() -> None:
    prices = {"qwen2.5-coder-local": Price(input_per_mtok=0, output_per_mtok=0),
              "gpt-4o-mini": Price(input_per_mtok=1, output_per_mtok=1),
              "llama3.1": Price(input_per_mtok=0.5, output_per_mtok=0.5)}
    assert cost_usd("openai", "qwen2.5-coder-local", 10, 10, prices) == 0.0
    assert cost_usd("openai", "gpt-4o-mini", 500_000, 500_000, prices) == pytest.approx(1.0)
    assert cost_usd("openai", "gpt-4o-mini", 1000, 0) == pytest.approx(0.00015)
    # A price set for a local model counts, e.g. to budget a shared GPU box.
    assert cost_usd("ollama", "llama3.1", 1_000_000, 0, prices) == pytest.approx(0.5)
