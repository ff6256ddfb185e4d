"""OpenTelemetry traces of runs with the GenAI semantic conventions (optional extra `otel`).

Off unless asked for, and then every function here is a no-op that costs one attribute
check: nothing imports opentelemetry, so start-up stays light. Asked for by the standard
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`), or `ORCH_OTEL=1`
(OTLP/HTTP to the SDK's default, http://localhost:4318); `OTEL_SDK_DISABLED=true` or
`OTEL_TRACES_EXPORTER=none` win. The first span configures tracing from the environment,
so no call at start-up is needed; tests call `configure_tracing(exporter=...)`.
`OTEL_SERVICE_NAME` (default "orchestrator-mcp"), `OTEL_EXPORTER_OTLP_HEADERS`,
`OTEL_BSP_SCHEDULE_DELAY` and the other standard variables are read by the SDK.

Why the trace is laid out this way: a run is a DBOS workflow. It may wait days for an
approval, or resume in another process after a crash, so no span can stay open from its
start to its end. Instead every span of a run belongs to one trace whose id is derived from
the run id, under a run span whose id is derived too:

    trace id  = sha256("trace " + run_id)[:16]
    invoke_agent <profile>     span id sha256("span " + run_id)[:8]; emitted by `run_finished`
    ├── chat <model>           one per model call (llm_span, in the planner's llm step)
    ├── execute_tool <tool>    one per tool call (tool_span, in the planner's tool step)
    └── ...

Step spans are exported as they end, naming the run span as their (remote) parent; the run
span itself is exported when the run ends, back-dated to the run's creation. A viewer shows
the steps of a run in progress and the whole tree once it has ended; a run resumed in another
process adds its spans to the same trace, and a DBOS replay never repeats a span because
completed steps are not executed again. A child run has its own trace, linked to its
parent's run span. Workflow runs get the same layout (their tool calls are planner steps).

Tracing uses its own TracerProvider, not the global one: the MCP SDK and fastmcp would
otherwise export a span for every host request. Our spans are still made current, so a
library that propagates the current context carries the trace onwards.
Span texts (errors, the goal) go through the process's redactor (`telemetry.redaction`),
cut to MAX_TEXT characters first so a huge error costs little; the goal is only recorded when
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true, as the GenAI conventions advise.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from orchestrator_mcp.telemetry.redaction import redact_text

if TYPE_CHECKING:
    from orchestrator_mcp.config.environment import TracingEnvironment
    from orchestrator_mcp.llm.types import Completion
    from orchestrator_mcp.runs.models import RunRecord

log = logging.getLogger(__name__)

SERVICE_NAME = "orchestrator-mcp"
SCOPE = "orchestrator_mcp"
# gen_ai.provider.name values of the conventions for our provider names
PROVIDER_NAMES = {"openai": "openai", "bedrock": "aws.bedrock", "ollama": "ollama",
                  "scripted": "scripted"}
FINISH_REASONS = {"end": "stop", "tool_calls": "tool_calls", "max_tokens": "length",
                  "other": "other"}
MAX_TEXT = 500


class SpanHandle:
    """What a step may add to its span. The handle of tracing-off does nothing."""

    __slots__ = ("_span",)

    def __init__(self, span: Any = None) -> None:
        self._span = span

    def set(self, key: str, value: Any) -> None:
        if self._span is not None and value is not None:
            self._span.set_attribute(key, value)

    def completion(self, completion: Completion) -> None:
        """Response model, token usage and finish reason of a model call."""
        if self._span is None:
            return
        self._span.set_attributes({
            "gen_ai.response.model": completion.model,
            "gen_ai.usage.input_tokens": completion.usage.input_tokens,
            "gen_ai.usage.output_tokens": completion.usage.output_tokens,
            "gen_ai.response.finish_reasons": [
                FINISH_REASONS.get(completion.stop_reason, completion.stop_reason)],
        })

    def failed(self, error_type: str, message: str | None = None) -> None:
        """Mark the span failed without an exception (a tool that answered is_error)."""
        if self._span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        self._span.set_attribute("error.type", error_type)
        self._span.set_status(Status(StatusCode.ERROR, _clean(message) if message else None))


OFF = SpanHandle()
_OFF_CONTEXT: AbstractContextManager[SpanHandle] = contextlib.nullcontext(OFF)


# ---- configuration --------------------------------------------------------------------


class _State:
    configured = False
    provider: Any = None
    tracer: Any = None


_state = _State()
_lock = threading.Lock()
# (trace id, span id) that the id generator hands out while a run span is being started
_forced_ids: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "orchestrator_forced_ids", default=None)


def _environment(environ: Mapping[str, str] | None = None) -> TracingEnvironment:
    """The tracing variables: of the process (config/environment.py), or of `environ`."""
    from orchestrator_mcp.config.environment import environment

    return environment(environ).tracing


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces."""
    return _environment(environ).wanted


def configure_tracing(exporter: Any = None, *,
                      environ: Mapping[str, str] | None = None) -> bool:
    """Set tracing up; True when spans will be exported. With `exporter` (tests: an
    InMemorySpanExporter) spans go to it synchronously, whatever the environment says;
    without it, OTLP/HTTP in batches when the environment asks for traces. Calling it
    again replaces the previous set-up (after flushing it)."""
    with _lock:
        _shutdown_locked()
        _state.configured = True
        env = _environment(environ)
        if exporter is None and not env.wanted:
            return False
        try:
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        except ImportError:
            log.warning("tracing is configured (OTEL_EXPORTER_OTLP_ENDPOINT or ORCH_OTEL) but "
                        "the OpenTelemetry SDK is not installed: pip install "
                        "'orchestrator-mcp[otel]'; running without traces")
            return False
        if exporter is None:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError:
                log.warning("tracing is configured but the OTLP/HTTP exporter is not "
                            "installed: pip install 'orchestrator-mcp[otel]'; running "
                            "without traces")
                return False
            processor: Any = BatchSpanProcessor(OTLPSpanExporter())
        else:
            processor = SimpleSpanProcessor(exporter)
        provider = TracerProvider(
            resource=Resource.create(
                {"service.name": env.service_name or SERVICE_NAME}),
            id_generator=_run_id_generator())
        provider.add_span_processor(processor)
        _state.provider = provider
        _state.tracer = provider.get_tracer(SCOPE)
        log.info("tracing on: %s", "test exporter" if exporter is not None else
                 env.traces_endpoint or env.endpoint or "OTLP/HTTP default endpoint")
        return True


def shutdown_tracing() -> None:
    """Flush and stop; the next span sets tracing up again from the environment."""
    with _lock:
        _shutdown_locked()
        _state.configured = False


def _shutdown_locked() -> None:
    if _state.provider is not None:
        _state.provider.shutdown()
    _state.provider = _state.tracer = None


def enabled() -> bool:
    return _tracer() is not None


def _tracer() -> Any:
    if not _state.configured:
        configure_tracing()
    return _state.tracer


def _run_id_generator() -> Any:
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class RunIdGenerator(RandomIdGenerator):
        """Random ids, except the derived ids of a run span being started."""

        def generate_trace_id(self) -> int:
            forced = _forced_ids.get()
            return forced[0] if forced else super().generate_trace_id()

        def generate_span_id(self) -> int:
            forced = _forced_ids.get()
            return forced[1] if forced else super().generate_span_id()

    return RunIdGenerator()


# ---- ids and texts ----------------------------------------------------------------------


def run_trace_id(run_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"trace {run_id}".encode()).digest()[:16]) or 1


def run_span_id(run_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"span {run_id}".encode()).digest()[:8]) or 1


def _run_span_context(run_id: str) -> Any:
    from opentelemetry.trace import SpanContext, TraceFlags

    return SpanContext(run_trace_id(run_id), run_span_id(run_id), is_remote=True,
                       trace_flags=TraceFlags(TraceFlags.SAMPLED))


def _clean(text: str) -> str:
    return redact_text(text, limit=MAX_TEXT)


def _capture_content() -> bool:
    return _environment().capture_content


# ---- spans ------------------------------------------------------------------------------


def _step_span(tracer: Any, run_id: str, name: str, kind: str,
               attributes: dict[str, Any]) -> AbstractContextManager[SpanHandle]:
    """A span under the run's span. Tracing must never fail a step: a span that cannot be
    started is skipped (and said once in the log)."""
    try:
        from opentelemetry import trace

        parent = trace.set_span_in_context(trace.NonRecordingSpan(_run_span_context(run_id)))
        span = tracer.start_span(
            name, context=parent, kind=getattr(trace.SpanKind, kind),
            attributes={k: v for k, v in attributes.items() if v is not None},
            record_exception=False, set_status_on_exception=False)
    except Exception:  # noqa: BLE001
        _warn_once("a span could not be started")
        return _OFF_CONTEXT
    return _current(span)


@contextlib.contextmanager
def _current(span: Any) -> Iterator[SpanHandle]:
    """Make `span` current while the step runs; an exception marks it failed, with its
    message redacted (the SDK's own recording would keep the raw text)."""
    from opentelemetry import trace

    try:
        with trace.use_span(span, end_on_exit=False, record_exception=False,
                            set_status_on_exception=False):
            yield SpanHandle(span)
    except BaseException as exc:
        error_type = type(exc).__qualname__
        message = _clean(str(exc))
        span.set_attribute("error.type", error_type)
        span.add_event("exception", {"exception.type": error_type,
                                     "exception.message": message})
        span.set_status(trace.Status(trace.StatusCode.ERROR, message))
        raise
    finally:
        span.end()


_warned: set[str] = set()


def _warn_once(what: str) -> None:
    if what not in _warned:
        _warned.add(what)
        log.warning("tracing: %s; carrying on without it", what, exc_info=True)


def llm_span(run_id: str, provider: str, model: str, *, profile: str | None = None,
             step: int | None = None) -> AbstractContextManager[SpanHandle]:
    """`chat <model>` around one model call; call `.completion(c)` on the handle after."""
    tracer = _tracer()
    if tracer is None:
        return _OFF_CONTEXT
    system = PROVIDER_NAMES.get(provider, provider)
    return _step_span(tracer, run_id, f"chat {model}", "CLIENT", {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": system,
        "gen_ai.system": system, "gen_ai.request.model": model,
        "orchestrator.run_id": run_id, "orchestrator.profile": profile,
        "orchestrator.step": step})


def tool_span(run_id: str, tool: str, call_id: str, server: str | None = None, *,
              step: int | None = None) -> AbstractContextManager[SpanHandle]:
    """`execute_tool <tool>` around one tool call; `.failed(...)` for an is_error result."""
    tracer = _tracer()
    if tracer is None:
        return _OFF_CONTEXT
    return _step_span(tracer, run_id, f"execute_tool {tool}", "INTERNAL", {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
        "gen_ai.tool.call.id": call_id, "gen_ai.tool.type": "function",
        "orchestrator.run_id": run_id, "orchestrator.server": server,
        "orchestrator.step": step})


def run_finished(record: RunRecord) -> None:
    """Emit the run's span (the parent of its step spans), from its creation to its end."""
    tracer = _tracer()
    if tracer is None:
        return
    try:
        _emit_run_span(tracer, record)
    except Exception:  # noqa: BLE001 - tracing must never fail a run
        _warn_once("a run span could not be emitted")


def _emit_run_span(tracer: Any, record: RunRecord) -> None:
    from opentelemetry import context, trace

    name = (f"workflow {record.workflow}" if record.workflow
            else f"invoke_agent {record.profile}")
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": None if record.workflow else "invoke_agent",
        "gen_ai.agent.name": record.profile,
        "gen_ai.conversation.id": record.id,
        "gen_ai.usage.input_tokens": record.usage.input_tokens,
        "gen_ai.usage.output_tokens": record.usage.output_tokens,
        "orchestrator.run_id": record.id, "orchestrator.profile": record.profile,
        "orchestrator.workflow": record.workflow, "orchestrator.source": record.source,
        "orchestrator.status": record.status.value,
        "orchestrator.stop_reason": record.stop_reason.value if record.stop_reason else None,
        "orchestrator.cost_usd": record.usage.cost_usd,
        "orchestrator.parent_run_id": record.parent_id,
        "orchestrator.goal": _clean(record.goal) if _capture_content() else None,
    }
    links = [trace.Link(_run_span_context(record.parent_id))] if record.parent_id else []
    token = _forced_ids.set((run_trace_id(record.id), run_span_id(record.id)))
    try:
        span = tracer.start_span(
            name, context=context.Context(), kind=trace.SpanKind.INTERNAL,
            attributes={k: v for k, v in attributes.items() if v is not None}, links=links,
            start_time=int(record.created_at * 1e9))
    finally:
        _forced_ids.reset(token)
    if record.status.value == "failed":
        span.set_attribute("error.type", record.stop_reason.value if record.stop_reason
                           else "error")
        span.set_status(trace.Status(trace.StatusCode.ERROR, _clean(record.error or "")))
    span.end(end_time=int((record.finished_at or time.time()) * 1e9))
