"""A provider that answers from a script: for demos, tests and dry runs without a model.

    scripts:
      - when: "disk"                # substring of the goal (case-insensitive); omit for any
        turns:
          - tool_calls: [{name: system_disk_usage, arguments: {}}]
          - text: "The root volume is 93% full; see the runbook ..."

Turn k answers the k-th model call of a run (counted from the conversation itself, so it
is the same after a restart and for concurrent runs). After the last turn the script
repeats its final text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator_mcp.llm.types import Completion, LLMError, Message, ToolCall, ToolSpec, Usage


class ScriptedCall(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = ""
    tool_calls: list[ScriptedCall] = Field(default_factory=list)


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid")
    when: str | None = None
    turns: list[Turn] = Field(min_length=1)


class ScriptFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scripts: list[Script] = Field(min_length=1)


def load_script(path: Path) -> ScriptFile:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LLMError(f"cannot read the LLM script {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise LLMError(f"the LLM script {path} is not valid YAML: {exc}") from None
    try:
        return ScriptFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LLMError(f"the LLM script {path}: {where}: {first['msg']}") from None


class ScriptedProvider:
    name = "scripted"

    def __init__(self, script: ScriptFile, model: str = "script") -> None:
        self.model = model
        self._script = script

    async def complete(self, messages: list[Message], tools: list[ToolSpec], *,
                       max_tokens: int | None = None,
                       temperature: float | None = None) -> Completion:
        goal = next((m.content for m in messages if m.role == "user"), "").lower()
        script = next((s for s in self._script.scripts
                       if s.when is None or s.when.lower() in goal), None)
        if script is None:
            return Completion(text="(the script has no answer for this goal)", model=self.model,
                              provider=self.name)
        index = sum(1 for m in messages if m.role == "assistant")
        turn = script.turns[min(index, len(script.turns) - 1)]
        if index >= len(script.turns):
            turn = Turn(text=turn.text or "(end of script)")
        calls = [ToolCall(id=f"call_{index}_{i}", name=c.name, arguments=c.arguments)
                 for i, c in enumerate(turn.tool_calls)]
        words = sum(len(m.content.split()) for m in messages)
        return Completion(text=turn.text, tool_calls=calls,
                          usage=Usage(input_tokens=words, output_tokens=len(turn.text.split())),
                          stop_reason="tool_calls" if calls else "end", model=self.model,
                          provider=self.name)
