"""Sample inputs shared by the provider tests."""

from __future__ import annotations

from orchestrator_mcp.llm import Message, ToolSpec


def weather_tools() -> list[ToolSpec]:
    return [
        ToolSpec(name="weather_get", description="Current weather for a city.",
                 input_schema={"$schema": "https://json-schema.org/draft/2020-12/schema",
                               "type": "object",
                               "properties": {"city": {"type": "string"}},
                               "required": ["city"]}),
        ToolSpec(name="clock.now", description="", input_schema={}),
    ]


def conversation() -> list[Message]:
    return [Message(role="system", content="You are terse."),
            Message(role="user", content="Weather in Oslo and the time?")]
