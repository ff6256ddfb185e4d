"""OpenTelemetry traces: the facade with the SDK's in-memory exporter, a real `serve` whose
spans arrive over OTLP/HTTP at a local collector, and nothing imported when tracing is off."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http",
                    reason="the otel extra is not installed")

from fastmcp import Client  # noqa: E402
from fastmcp.client.transports import StdioTransport  # noqa: E402
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import StatusCode  # noqa: E402

from orchestrator_mcp.llm.types import Completion, Usage  # noqa: E402
from orchestrator_mcp.runs.models import RunRecord, RunStatus, StopReason  # noqa: E402
from orchestrator_mcp.telemetry import tracing  # noqa: E402
from tests.fake_openai import FakeOpenAI  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def memory() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    assert tracing.configure_tracing(exporter=exporter)
    yield exporter
    tracing.shutdown_tracing()


def record(run_id: str, **fields: Any) -> RunRecord:
    now = time.time()
    return RunRecord(**{"id": run_id, "goal": "check memory", "profile": "default",
                        "status": RunStatus.COMPLETED, "stop_reason": StopReason.ANSWERED,
                        "created_at": now - 3, "updated_at": now, "finished_at": now,
                        **fields})


async def test_spans_of_a_run_share_its_trace(memory: InMemorySpanExporter) -> None:
    with tracing.llm_span("run_a", "openai", "gpt-test", profile="default", step=1) as span:
        await asyncio.sleep(0)
        span.completion(Completion(model="gpt-test-0613", provider="openai",
                                   usage=Usage(input_tokens=120, output_tokens=7),
                                   stop_reason="tool_calls"))
    with tracing.tool_span("run_a", "system_memory", "3:call_0", "system", step=3) as span:
        span.failed("tool_error", "refused: api_key=sk-live-123456789")
    with pytest.raises(RuntimeError), tracing.tool_span("run_a", "fs_read", "6:c1", "fs"):
        raise RuntimeError("server said Authorization: Bearer abc123def456")
    before = list(memory.get_finished_spans())
    # the process "restarts": a new provider, same run id, same trace
    memory = InMemorySpanExporter()
    tracing.configure_tracing(exporter=memory)
    with tracing.llm_span("run_a", "bedrock", "claude", profile="default", step=7):
        pass
    tracing.run_finished(record("run_a", usage={"input_tokens": 240, "output_tokens": 14,
                                                "cost_usd": 0.01}))
    tracing.run_finished(record("run_child", parent_id="run_a", status=RunStatus.FAILED,
                                stop_reason=StopReason.LLM_ERROR,
                                error="401 for Bearer sk-proj-abcdefgh12345678"))

    finished = before + list(memory.get_finished_spans())
    spans = {s.name: s for s in finished}
    assert set(spans) == {"chat gpt-test", "execute_tool system_memory", "execute_tool fs_read",
                          "chat claude", "invoke_agent default"}
    run_spans = [s for s in finished if s.name == "invoke_agent default"]
    run, child = sorted(run_spans, key=lambda s: s.attributes["orchestrator.run_id"])
    assert run.attributes["orchestrator.run_id"] == "run_a"
    assert run.context.trace_id == tracing.run_trace_id("run_a")
    assert run.context.span_id == tracing.run_span_id("run_a")
    assert run.parent is None
    assert run.attributes["gen_ai.usage.input_tokens"] == 240
    assert run.end_time - run.start_time >= 2.9e9  # back-dated to the run's creation
    for name in ("chat gpt-test", "execute_tool system_memory", "execute_tool fs_read",
                 "chat claude"):
        assert spans[name].context.trace_id == run.context.trace_id, name
        assert spans[name].parent.span_id == run.context.span_id, name

    chat = spans["chat gpt-test"].attributes
    assert chat["gen_ai.operation.name"] == "chat"
    assert chat["gen_ai.provider.name"] == chat["gen_ai.system"] == "openai"
    assert chat["gen_ai.request.model"] == "gpt-test"
    assert chat["gen_ai.response.model"] == "gpt-test-0613"
    assert (chat["gen_ai.usage.input_tokens"], chat["gen_ai.usage.output_tokens"]) == (120, 7)
    assert chat["gen_ai.response.finish_reasons"] == ("tool_calls",)
    assert chat["orchestrator.run_id"] == "run_a" and chat["orchestrator.profile"] == "default"
    assert spans["chat claude"].attributes["gen_ai.provider.name"] == "aws.bedrock"

    tool = spans["execute_tool system_memory"]
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "system_memory"
    assert tool.attributes["gen_ai.tool.call.id"] == "3:call_0"
    assert tool.attributes["orchestrator.server"] == "system"
    assert tool.status.status_code == StatusCode.ERROR
    assert tool.status.description == "refused: api_key=***"
    raised = spans["execute_tool fs_read"]
    assert raised.attributes["error.type"] == "RuntimeError"
    assert raised.events[0].attributes["exception.message"] == (
        "server said Authorization: Bearer ***")

    assert child.context.trace_id == tracing.run_trace_id("run_child")
    assert child.links[0].context.span_id == run.context.span_id
    assert child.status.status_code == StatusCode.ERROR
    assert "sk-proj" not in child.status.description
    assert "orchestrator.goal" not in child.attributes  # content capture is opt-in


def test_workflow_runs_are_named_after_their_workflow(memory: InMemorySpanExporter) -> None:
    tracing.run_finished(record("run_wf", workflow="restart_web", profile="ops"))
    (span,) = memory.get_finished_spans()
    assert span.name == "workflow restart_web"
    assert span.attributes["orchestrator.workflow"] == "restart_web"
    assert "gen_ai.operation.name" not in span.attributes


def test_environment_decides() -> None:
    assert not tracing.wanted({})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"})
    assert tracing.wanted({"ORCH_OTEL": "1"})
    assert not tracing.wanted({"ORCH_OTEL": "1", "OTEL_SDK_DISABLED": "true"})
    assert not tracing.wanted({"ORCH_OTEL": "1", "OTEL_TRACES_EXPORTER": "none"})
    assert not tracing.configure_tracing(environ={})
    with tracing.llm_span("r", "openai", "m") as span:  # off: the shared no-op handle
        assert span is tracing.OFF
        span.completion(Completion(model="m", provider="openai"))
    tracing.shutdown_tracing()


def test_tracing_off_imports_no_opentelemetry() -> None:
    script = """
import sys, time
from orchestrator_mcp.telemetry import tracing
from orchestrator_mcp.llm.types import Completion
assert not any(m.startswith("opentelemetry") for m in sys.modules), "facade imported otel"
started = time.perf_counter()
for _ in range(10000):
    with tracing.tool_span("run", "t", "c") as span:
        span.failed("x")
    with tracing.llm_span("run", "openai", "m") as span:
        pass
per_call = (time.perf_counter() - started) / 20000
assert not any(m.startswith("opentelemetry") for m in sys.modules), "spans imported otel"
import orchestrator_mcp.app
heavy = sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk",
                                                     "opentelemetry.exporter")))
assert not heavy, heavy
print(per_call)
"""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("OTEL_") and k != "ORCH_OTEL"}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) < 20e-6  # microseconds, not a span


# ---- a real server exporting to a local OTLP/HTTP collector ------------------------------


class Collector:
    """Receives OTLP/HTTP protobuf exports at /v1/traces and keeps the spans."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                owner.paths.append(self.path)
                owner.receive(ExportTraceServiceRequest.FromString(body))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def receive(self, request: ExportTraceServiceRequest) -> None:
        for resource_spans in request.resource_spans:
            resource = attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append({
                        "name": span.name, "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(), "parent": span.parent_span_id.hex(),
                        "attributes": attributes(span.attributes), "resource": resource,
                        "status": span.status.code})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def attributes(pairs: Any) -> dict[str, Any]:
    def value(v: Any) -> Any:
        kind = v.WhichOneof("value")
        if kind == "array_value":
            return [value(x) for x in v.array_value.values]
        return getattr(v, kind) if kind else None

    return {kv.key: value(kv.value) for kv in pairs}


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector()
    yield server
    server.close()


async def test_serve_exports_a_run_as_one_trace(tmp_path: Path, llm: FakeOpenAI,
                                                collector: Collector) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "servers.yaml").write_text("servers: {}\n")
    env = {**os.environ, **llm.env(), "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
           "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "orch-under-test",
           "FASTMCP_CHECK_FOR_UPDATES": "off"}
    transport = StdioTransport(
        sys.executable, ["-m", "orchestrator_mcp", "--config-dir", str(config),
                         "--data-dir", str(tmp_path / "data"), "serve"],
        env=env, log_file=tmp_path / "server-stderr.log")
    async with Client(transport, timeout=120) as client:
        view = (await client.call_tool("run", {"goal": "CALL system_memory {}", "wait": True})
                ).structured_content
        assert view["status"] == "completed", view
        run_id = view["run_id"]
        async with asyncio.timeout(20):
            while not any(s["name"] == "invoke_agent default" for s in collector.spans):
                await asyncio.sleep(0.1)

    assert set(collector.paths) == {"/v1/traces"}
    mine = [s for s in collector.spans if s["attributes"].get("orchestrator.run_id") == run_id]
    names = [s["name"] for s in mine]
    assert names.count("chat fake-planner") == 2, names
    assert names.count("execute_tool system_memory") == 1, names
    run = next(s for s in mine if s["name"] == "invoke_agent default")
    assert run["trace_id"] == f"{tracing.run_trace_id(run_id):032x}"
    assert run["span_id"] == f"{tracing.run_span_id(run_id):016x}" and run["parent"] == ""
    assert run["resource"]["service.name"] == "orch-under-test"
    assert run["attributes"]["gen_ai.usage.input_tokens"] == 200
    assert run["attributes"]["orchestrator.status"] == "completed"
    for span in mine:
        assert span["trace_id"] == run["trace_id"], json.dumps(span)
        if span is not run:
            assert span["parent"] == run["span_id"]
    chat = next(s for s in mine if s["name"] == "chat fake-planner")["attributes"]
    assert chat["gen_ai.operation.name"] == "chat"
    assert chat["gen_ai.provider.name"] == "openai"
    assert chat["gen_ai.request.model"] == "fake-planner"
    assert chat["gen_ai.usage.input_tokens"] == 100
    assert chat["gen_ai.usage.output_tokens"] == 10
    assert chat["orchestrator.profile"] == "default"
    tool = next(s for s in mine if s["name"] == "execute_tool system_memory")["attributes"]
    assert tool["gen_ai.operation.name"] == "execute_tool"
    assert tool["gen_ai.tool.name"] == "system_memory"
    assert tool["gen_ai.tool.call.id"].endswith("call_0_0")
    assert tool["orchestrator.server"] == "system"
