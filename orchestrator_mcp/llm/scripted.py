"""A provider that answers from a script: for demos, tests and dry runs without a model.

A script file is YAML or JSON:

    scripts:
      - when: "disk"                # substring of the goal (case-insensitive); omit for any
        turns:
          - tool_calls: [{name: system_disk_usage, arguments: {}}]
          - when: "9"               # only if the last user/tool message contains "9"
            text: "The root volume is over 90% full; see the runbook ..."
          - text: "Disk usage is fine."

or, for a single script, just its list of turns (or `{turns: [...]}`).

Each model call takes the next turn, skipping a turn whose `when` is not in the latest user
or tool message. Which turn comes next is worked out from the conversation itself, so it is
the same after a restart and for concurrent runs. After the last turn the script repeats
its final text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator_mcp.llm.types import Completion, LLMError, Message, ToolCall, ToolSpec, Usage


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScriptedCall(_Model):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class Turn(_Model):
    when: str | None = None
    text: str = ""
    tool_calls: list[ScriptedCall] = Field(default_factory=list)

    @model_validator(mode="after")
    def _says_something(self) -> Turn:
        if not self.text and not self.tool_calls:
            raise ValueError("a turn needs `text` or `tool_calls`")
        return self

    def matches(self, latest_input: str) -> bool:
        return self.when is None or self.when.lower() in latest_input


class Script(_Model):
    when: str | None = None
    turns: list[Turn] = Field(min_length=1)

    def next_turn(self, start: int, latest_input: str) -> int | None:
        return next((i for i in range(start, len(self.turns))
                     if self.turns[i].matches(latest_input)), None)


class ScriptFile(_Model):
    scripts: list[Script] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _short_forms(cls, data: Any) -> Any:
        if isinstance(data, list):
            return {"scripts": [{"turns": data}]}
        if isinstance(data, dict) and "turns" in data and "scripts" not in data:
            return {"scripts": [data]}
        return data


def load_script(path: Path) -> ScriptFile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LLMError(f"cannot read the LLM script {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise LLMError(f"the LLM script {path} is not valid YAML or JSON: {exc}") from None
    return parse_script(data, str(path))


def parse_script(data: Any, where: str = "the LLM script") -> ScriptFile:
    try:
        return ScriptFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        at = ".".join(str(p) for p in first["loc"]) or "top level"
        raise LLMError(f"{where}: {at}: {first['msg']}") from None


class ScriptedProvider:
    name = "scripted"

    def __init__(self, script: ScriptFile | list[Any] | dict[str, Any],
                 model: str = "script") -> None:
        self.model = model
        self._script = script if isinstance(script, ScriptFile) else parse_script(script)

    @classmethod
    def from_file(cls, path: Path, model: str = "script") -> ScriptedProvider:
        return cls(load_script(path), model)

    async def complete(self, messages: list[Message], tools: list[ToolSpec], *,
                       max_tokens: int | None = None,
                       temperature: float | None = None) -> Completion:
        goal = next((m.content for m in messages if m.role == "user"), "").lower()
        script = next((s for s in self._script.scripts
                       if s.when is None or s.when.lower() in goal), None)
        if script is None:
            return self._completion("(the script has no answer for this goal)", [], messages)
        index = self._position(script, messages)
        if index is None:
            return self._completion(script.turns[-1].text or "(end of script)", [], messages)
        turn = script.turns[index]
        calls = [ToolCall(id=c.id or f"call_{index}_{i}", name=c.name, arguments=c.arguments)
                 for i, c in enumerate(turn.tool_calls)]
        return self._completion(turn.text, calls, messages)

    @staticmethod
    def _position(script: Script, messages: list[Message]) -> int | None:
        """Replays the turn choices of earlier calls (one per assistant message) to find
        this call's turn."""
        cursor: int | None = 0
        latest = ""
        for m in messages:
            if m.role in ("user", "tool"):
                latest = m.content.lower()
            elif m.role == "assistant" and cursor is not None:
                used = script.next_turn(cursor, latest)
                cursor = None if used is None else used + 1
        return None if cursor is None else script.next_turn(cursor, latest)

    def _completion(self, text: str, calls: list[ToolCall],
                    messages: list[Message]) -> Completion:
        words = sum(len(m.content.split()) for m in messages)
        return Completion(text=text, tool_calls=calls,
                          usage=Usage(input_tokens=words, output_tokens=len(text.split())),
                          stop_reason="tool_calls" if calls else "end", model=self.model,
                          provider=self.name)
