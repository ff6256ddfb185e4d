"""Prometheus metrics, defined once; parts record into them, the sidecar serves them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)

TOOL_CALLS = Counter(
    "orchestrator_downstream_calls",
    "Tool calls sent to downstream servers by server, tool and outcome "
    "(ok, tool_error, error, timeout).",
    ["server", "tool", "outcome"],
    registry=REGISTRY,
)
TOOL_CALL_SECONDS = Histogram(
    "orchestrator_downstream_call_duration_seconds",
    "Latency of tool calls to downstream servers.",
    ["server", "tool"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
SERVER_UP = Gauge(
    "orchestrator_downstream_up",
    "1 when the downstream server is connected and listed its tools, else 0.",
    ["server"],
    registry=REGISTRY,
)
SERVER_RECONNECTS = Counter(
    "orchestrator_downstream_reconnects",
    "Connection attempts made after a downstream server was lost or failed.",
    ["server"],
    registry=REGISTRY,
)
CATALOG_TOOLS = Gauge(
    "orchestrator_catalog_tools",
    "Tools in the gateway catalog.",
    registry=REGISTRY,
)
ALERT_NOTIFICATIONS = Counter(
    "orchestrator_alert_notifications",
    "Alertmanager notifications by outcome (run_created, deduplicated, annotated, cancelled, "
    "deferred, summarized, cooldown, no_rule, error, duplicate_delivery) and rule.",
    ["outcome", "rule"],
    registry=REGISTRY,
)
ALERT_REJECTED = Counter(
    "orchestrator_alert_rejected_requests",
    "Webhook requests refused before storage, by reason.",
    ["reason"],
    registry=REGISTRY,
)
ALERT_DEDUPLICATED = Counter(
    "orchestrator_alert_deduplicated",
    "Firing notifications attached to a run already open for their group.",
    registry=REGISTRY,
)
ALERT_RUNS = Counter(
    "orchestrator_alert_runs_created",
    "Runs opened for alert groups, by rule.",
    ["rule"],
    registry=REGISTRY,
)
ALERT_SECONDS = Histogram(
    "orchestrator_alert_handling_duration_seconds",
    "Time to route one stored notification to its outcome.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
    registry=REGISTRY,
)
SCHEDULE_TICKS = Counter(
    "orchestrator_schedule_ticks",
    "Schedule ticks by schedule and outcome: started (a run), skipped_overlap (the previous "
    "run had not ended), skipped_disabled, error (the run could not start).",
    ["schedule", "outcome"],
    registry=REGISTRY,
)

RUNS = Counter(
    "orchestrator_runs",
    "Runs and workflow runs that ended, by profile and final status.",
    ["profile", "status"],
    registry=REGISTRY,
)
RUN_SECONDS = Histogram(
    "orchestrator_run_duration_seconds",
    "Wall time from a run's submission to its end.",
    ["profile"],
    buckets=(1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 14400),
    registry=REGISTRY,
)
STEP_SECONDS = Histogram(
    "orchestrator_run_step_duration_seconds",
    "Duration of one durable step of a run: a model call or a tool call.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
LLM_TOKENS = Counter(
    "orchestrator_llm_tokens",
    "Tokens used by model calls, by provider, model and direction (input, output).",
    ["provider", "model", "direction"],
    registry=REGISTRY,
)
LLM_COST = Counter(
    "orchestrator_llm_cost_usd",
    "Cost of model calls in US dollars (models with a known price), by provider and model.",
    ["provider", "model"],
    registry=REGISTRY,
)
APPROVALS_PENDING = Gauge(
    "orchestrator_approvals_pending",
    "Runs waiting for a human to decide on a tool call or gate (read at scrape time).",
    registry=REGISTRY,
)
APPROVALS_DECIDED = Counter(
    "orchestrator_approvals_decided",
    "Approval outcomes: approved, rejected, expired.",
    ["outcome"],
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "orchestrator_notifications",
    "Notifications by target, event (awaiting_approval, completed, failed, cancelled) and "
    "outcome (delivered, refused, gave_up, skipped).",
    ["target", "event", "outcome"],
    registry=REGISTRY,
)
NOTIFICATION_FAILED_ATTEMPTS = Counter(
    "orchestrator_notification_failed_attempts",
    "Notification POSTs that failed (connection error, timeout or a non-2xx answer), by "
    "target, whether or not a later attempt succeeded.",
    ["target"],
    registry=REGISTRY,
)
PRINCIPAL_COST_CAP_USED = Gauge(
    "orchestrator_principal_cost_cap_used_ratio",
    "Share of its monthly cost cap a principal (key:, token:, jwt: …) had spent at its last "
    "run submission; alert on >= 0.8 and >= 1.",
    ["principal"],
    registry=REGISTRY,
)
PRINCIPAL_COST_CAP_REACHED = Counter(
    "orchestrator_principal_cost_cap_reached",
    "Times a principal was seen past 80 % or 100 % of its monthly cost cap (counted once "
    "per principal, threshold, month and process).",
    ["principal", "threshold"],
    registry=REGISTRY,
)
PRINCIPAL_REFUSED = Counter(
    "orchestrator_principal_limit_refusals",
    "Run submissions refused by a per-principal limit, by limit.",
    ["limit"],
    registry=REGISTRY,
)
WEBHOOK_SECONDS = Histogram(
    "orchestrator_webhook_request_duration_seconds",
    "Time to answer POST /webhooks/alertmanager (read, authenticate, validate, store), by "
    "HTTP status code.",
    ["code"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)


@dataclass(frozen=True)
class RunQueueState:
    """What the runs database says at one moment (see RunQueueCollector)."""

    queued: dict[str, int] = field(default_factory=dict)      # queue → runs waiting
    executing: dict[str, int] = field(default_factory=dict)   # executor id → runs taken
    executors_live: int = 0
    oldest_approval_seconds: float = 0.0


class RunQueueCollector(Collector):
    """Gauges read from the runs database when Prometheus scrapes, so every replica reports
    the shared queue and which executor holds how many runs (a worker has no /metrics of
    its own). The run engine sets `source`; the sidecar collects in a thread, because the
    source queries the database."""

    def __init__(self) -> None:
        self.source: Callable[[], RunQueueState] | None = None

    def describe(self) -> list[Metric]:
        return []  # nothing to check at registration: the families depend on `source`

    def collect(self) -> Iterator[Metric]:
        source = self.source
        if source is None:
            return
        try:
            state = source()
        except Exception:  # noqa: BLE001 - a database hiccup must not fail the whole scrape
            log.warning("run queue metrics unavailable", exc_info=True)
            return
        queued = GaugeMetricFamily(
            "orchestrator_runs_queued", "Runs waiting in a queue for an executor.",
            labels=["queue"])
        for queue, count in sorted(state.queued.items()):
            queued.add_metric([queue], count)
        executing = GaugeMetricFamily(
            "orchestrator_runs_executing",
            "Runs an executor has taken from the queues and not finished (waiting for an "
            "approval included), by executor (a worker or a serve replica).",
            labels=["executor"])
        for executor, count in sorted(state.executing.items()):
            executing.add_metric([executor], count)
        yield queued
        yield executing
        yield GaugeMetricFamily(
            "orchestrator_executors_live",
            "Processes executing runs that said they were alive within "
            "runs.executor_dead_after_seconds (on the embedded files: 1 or 0).",
            value=state.executors_live)
        yield GaugeMetricFamily(
            "orchestrator_approval_oldest_wait_seconds",
            "How long the longest-waiting run has been waiting for a human decision (0 when "
            "none waits).",
            value=state.oldest_approval_seconds)


RUN_QUEUE = RunQueueCollector()
REGISTRY.register(RUN_QUEUE)
