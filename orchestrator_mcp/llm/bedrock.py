"""AWS Bedrock Converse with native toolConfig; boto3 is blocking, so it runs in a thread."""

from __future__ import annotations

import asyncio
from typing import Any

from orchestrator_mcp.llm.schemas import clean_schema
from orchestrator_mcp.llm.types import Completion, LLMError, Message, ToolCall, ToolSpec, Usage

_STOP = {"end_turn": "end", "tool_use": "tool_calls", "max_tokens": "max_tokens",
         "stop_sequence": "end"}


def to_converse(messages: list[Message]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, messages). Tool results become user turns, consecutive ones merged,
    as Converse requires alternating roles."""
    system = [{"text": m.content} for m in messages if m.role == "system" and m.content]
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        if m.role == "tool":
            block = {"toolResult": {"toolUseId": m.tool_call_id,
                                    "content": [{"text": m.content or "(empty)"}]}}
            if out and out[-1]["role"] == "user" and "toolResult" in out[-1]["content"][0]:
                out[-1]["content"].append(block)
            else:
                out.append({"role": "user", "content": [block]})
            continue
        content: list[dict[str, Any]] = [{"text": m.content}] if m.content else []
        if m.role == "assistant":
            content += [{"toolUse": {"toolUseId": c.id, "name": c.name, "input": c.arguments}}
                        for c in m.tool_calls]
        out.append({"role": m.role, "content": content or [{"text": "(empty)"}]})
    return system, out


class BedrockProvider:
    name = "bedrock"

    def __init__(self, model: str, *, region: str | None, endpoint_url: str | None,
                 timeout: float, max_retries: int) -> None:
        import boto3
        from botocore.config import Config

        self.model = model
        self._client = boto3.client(
            "bedrock-runtime", region_name=region, endpoint_url=endpoint_url,
            config=Config(read_timeout=timeout, connect_timeout=min(timeout, 10),
                          retries={"max_attempts": max_retries + 1, "mode": "adaptive"}))

    async def complete(self, messages: list[Message], tools: list[ToolSpec], *,
                       max_tokens: int | None = None,
                       temperature: float | None = None) -> Completion:
        from botocore.exceptions import BotoCoreError, ClientError

        system, converse = to_converse(messages)
        request: dict[str, Any] = {"modelId": self.model, "messages": converse}
        if system:
            request["system"] = system
        if tools:
            request["toolConfig"] = {"tools": [{"toolSpec": {
                "name": t.name, "description": t.description[:1000] or t.name,
                "inputSchema": {"json": clean_schema(t.input_schema)}}} for t in tools]}
        inference: dict[str, Any] = {}
        if max_tokens is not None:
            inference["maxTokens"] = max_tokens
        if temperature is not None:
            inference["temperature"] = temperature
        if inference:
            request["inferenceConfig"] = inference
        try:
            response = await asyncio.to_thread(lambda: self._client.converse(**request))
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise LLMError(f"Bedrock refused the call to {self.model}: "
                           f"{error.get('Code')}: {error.get('Message', '')[:300]}") from None
        except BotoCoreError as exc:
            raise LLMError(f"Bedrock call to {self.model} failed: {exc}") from None
        content = response.get("output", {}).get("message", {}).get("content", [])
        text = "".join(b.get("text", "") for b in content)
        calls = [ToolCall(id=b["toolUse"]["toolUseId"], name=b["toolUse"]["name"],
                          arguments=b["toolUse"].get("input") or {})
                 for b in content if "toolUse" in b]
        usage = response.get("usage", {})
        return Completion(
            text=text, tool_calls=calls,
            usage=Usage(input_tokens=usage.get("inputTokens", 0),
                        output_tokens=usage.get("outputTokens", 0)),
            stop_reason="tool_calls" if calls
            else _STOP.get(response.get("stopReason", ""), "other"),  # type: ignore[arg-type]
            model=self.model, provider=self.name)
