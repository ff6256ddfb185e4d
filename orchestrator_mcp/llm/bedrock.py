"""AWS Bedrock Converse with native toolConfig; boto3 is blocking, so it runs in a thread.

botocore's own retries are off: ours honour Retry-After and match the other providers.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from orchestrator_mcp.llm.schemas import ToolNames, clean_schema, safe_tool_name
from orchestrator_mcp.llm.transport import (
    RETRY_STATUSES,
    Transient,
    redact,
    retry_after_seconds,
    with_retries,
)
from orchestrator_mcp.llm.types import Completion, LLMError, Message, ToolCall, ToolSpec, Usage

_STOP = {"end_turn": "end", "tool_use": "tool_calls", "max_tokens": "max_tokens",
         "stop_sequence": "end"}
_HINTS = {
    "AccessDeniedException": "enable access to this model in the Bedrock console for the "
                             "region, and allow bedrock:InvokeModel for these credentials",
    "UnrecognizedClientException": "check the AWS credentials",
    "ResourceNotFoundException": "check BEDROCK_MODEL_ID and AWS_REGION (some models need an "
                                 "inference profile id such as us.<model id>)",
}


def to_converse(messages: list[Message], names: ToolNames, *, with_tools: bool = True,
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, messages). Converse wants user/assistant turns alternating and
    starting with the user, so tool results become user turns and neighbours of one role
    are merged. Without tools, earlier tool blocks are written as text (Converse refuses
    toolUse/toolResult blocks without a toolConfig)."""
    system = [{"text": m.content} for m in messages if m.role == "system" and m.content]
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        role = "assistant" if m.role == "assistant" else "user"
        blocks: list[dict[str, Any]] = []
        if m.role == "tool":
            if with_tools:
                blocks.append({"toolResult": {"toolUseId": safe_tool_name(m.tool_call_id or "x"),
                                              "content": [{"text": m.content or "(empty)"}]}})
            else:
                blocks.append({"text": f"[result of {m.name or 'a tool'}]\n{m.content}"})
        else:
            if m.content:
                blocks.append({"text": m.content})
            for c in m.tool_calls:
                if with_tools:
                    blocks.append({"toolUse": {"toolUseId": safe_tool_name(c.id),
                                               "name": names.to_provider(c.name),
                                               "input": c.arguments}})
                else:
                    blocks.append({"text": f"[called {c.name} {json.dumps(c.arguments)}]"})
        if not blocks:
            continue
        if out and out[-1]["role"] == role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": role, "content": blocks})
    if not out or out[0]["role"] != "user":
        out.insert(0, {"role": "user", "content": [{"text": "(conversation start)"}]})
    return system, out


def to_converse_tools(tools: list[ToolSpec], names: ToolNames) -> dict[str, Any]:
    return {"tools": [{"toolSpec": {
        "name": names.to_provider(t.name),
        "description": (t.description or t.name)[:4096],
        "inputSchema": {"json": clean_schema(t.input_schema)}}} for t in tools]}


class BedrockProvider:
    name = "bedrock"

    def __init__(self, model: str, *, region: str | None, endpoint_url: str | None,
                 timeout: float, max_retries: int, max_tokens: int | None = None,
                 temperature: float | None = None) -> None:
        import boto3
        from botocore.config import Config

        self.model = model
        self._retries = max_retries
        self._timeout = timeout
        self._defaults = {"maxTokens": max_tokens, "temperature": temperature}
        self._client = boto3.client(
            "bedrock-runtime", region_name=region, endpoint_url=endpoint_url,
            config=Config(read_timeout=timeout, connect_timeout=min(timeout, 10),
                          retries={"total_max_attempts": 1, "mode": "standard"}))

    async def complete(self, messages: list[Message], tools: list[ToolSpec], *,
                       max_tokens: int | None = None,
                       temperature: float | None = None) -> Completion:
        names = ToolNames([t.name for t in tools])
        system, converse = to_converse(messages, names, with_tools=bool(tools))
        request: dict[str, Any] = {"modelId": self.model, "messages": converse}
        if system:
            request["system"] = system
        if tools:
            request["toolConfig"] = to_converse_tools(tools, names)
        asked = {"maxTokens": max_tokens, "temperature": temperature}
        inference = {k: v if v is not None else self._defaults[k] for k, v in asked.items()}
        inference = {k: v for k, v in inference.items() if v is not None}
        if inference:
            request["inferenceConfig"] = inference
        response = await with_retries(lambda: self._attempt(request), self._retries)
        content = response.get("output", {}).get("message", {}).get("content", [])
        text = "".join(b.get("text", "") for b in content)
        calls = [ToolCall(id=b["toolUse"]["toolUseId"],
                          name=names.from_provider(b["toolUse"]["name"]),
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

    async def _attempt(self, request: dict[str, Any]) -> dict[str, Any]:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionError,
            HTTPClientError,
            NoCredentialsError,
            ReadTimeoutError,
        )

        where = f"Bedrock ({self.model})"
        try:
            return await asyncio.to_thread(self._client.converse, **request)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            meta = exc.response.get("ResponseMetadata", {})
            code = error.get("Code", "")
            message = redact(f"{where} refused the call: {code}: "
                             f"{str(error.get('Message', ''))[:300]}")
            if code in _HINTS:
                message += f" — fix: {_HINTS[code]}"
            if meta.get("HTTPStatusCode") in RETRY_STATUSES or code == "ThrottlingException":
                raise Transient(message, retry_after_seconds(meta.get("HTTPHeaders"))) from None
            raise LLMError(message) from None
        except NoCredentialsError:
            raise LLMError(f"{where}: no AWS credentials found — fix: set AWS_PROFILE, or "
                           "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run with an "
                           "instance/task role") from None
        except ReadTimeoutError:
            raise Transient(f"{where} did not answer within {self._timeout:g} s") from None
        except (ConnectionError, HTTPClientError) as exc:
            raise Transient(redact(f"cannot reach {where}: {exc}")) from None
        except BotoCoreError as exc:
            raise LLMError(redact(f"{where} call failed: {exc}")) from None
