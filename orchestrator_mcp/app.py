"""The composition root: builds the parts from the configuration, in one place."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastmcp import FastMCP

from orchestrator_mcp.alerts import kinds as alert_kinds
from orchestrator_mcp.alerts.service import AlertService
from orchestrator_mcp.config import Config, ProfileConfig
from orchestrator_mcp.front import build_front
from orchestrator_mcp.gateway import Gateway
from orchestrator_mcp.knowledge import KnowledgeBase
from orchestrator_mcp.notifications import kinds as notification_kinds
from orchestrator_mcp.notifications.dispatcher import NotificationDispatcher
from orchestrator_mcp.runs.engine import RunEngine
from orchestrator_mcp.schedules import kinds as schedule_kinds
from orchestrator_mcp.schedules.service import ScheduleService
from orchestrator_mcp.workflows import submit as workflow_runs
from orchestrator_mcp.workflows.submit import WorkflowRuns
from orchestrator_mcp.workflows.templates import TemplateRuns

if TYPE_CHECKING:
    from orchestrator_mcp.agents import LazyServers

START_DELAY = 0.3
STOP_SECONDS = 10.0
log = logging.getLogger(__name__)


Role = Literal["serve", "worker", "command"]


@dataclass
class Application:
    """Every part of one process, started and stopped in one order by every command:

    * `serve`: the front answers at once; the spawned downstream servers start
      connecting once it has answered its host's first tools/list, the other parts
      START_DELAY later, in the background (`running`, the front's lifespan), DBOS only
      once there is durable work (on the embedded files); it handles alerts;
    * `worker`: executes runs, no front (`started`);
    * `command` (the CLI's run/approve/list…): executes only when no server holds the data
      dir, and connects to downstream servers only then (`started`).

    Start: the gateway (except for a command), then the run engine (DBOS; the schedules
    are handed to DBOS's scheduler once it is launched where runs execute), then alerts,
    then (where runs execute, except for a command) the notification dispatcher.
    Stop, in reverse: notifications and alerts; the gateway, which still needs threads,
    before the engine, because DBOS swaps in its own thread pool and shuts it down on
    destroy.
    """

    config: Config
    data_dir: Path
    gateway: Gateway
    engine: RunEngine
    workflows: WorkflowRuns
    templates: TemplateRuns
    schedules: ScheduleService
    alerts: AlertService
    notifications: NotificationDispatcher
    knowledge: KnowledgeBase | None = None
    front: FastMCP = field(init=False)
    role: Role = "serve"
    execute: bool = True  # also execute runs (serve --no-execute: only a front)
    http: bool = False  # serve --http (else stdio)
    # Set once the front has answered its host's first tools/list (`running`).
    host_listed: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    async def start(self) -> None:
        if self.role != "command":
            self.gateway.start()  # servers connect while the engine starts
        # With a shared database, workers execute; a terminal command only submits.
        execute = self.execute and not (self.role == "command" and self.engine.database.shared)
        # Schedules go to DBOS's scheduler once DBOS is launched: at once where one is
        # enabled, else `serve` launches DBOS when there is durable work (RunEngine.start).
        self.engine.on_launch(self.schedules.start)
        scheduled = any(schedule.enabled for schedule in self.schedules.schedules.values())
        # A `serve` that starts while another process still executes for its data dir (a
        # host restarting it) takes over once that one exits: its executor parts start then.
        self.engine.on_take_over(self._start_executor_parts)
        # A stdio serve with nothing to do opens our tables on the first call that needs
        # them (RunEngine.start): no SQLAlchemy in an idle process. Its executor parts start
        # then (an HTTP one takes alerts and has its keys in the tables from the start).
        defer_store = (self.role == "serve" and not self.http and not scheduled
                       and not self.notifications.settings.targets
                       and not await asyncio.to_thread(self.alerts.left_waiting))
        self.engine.on_open(self._start_executor_parts)
        await self.engine.start(execute=execute, worker=self.role == "worker",
                                on_demand=self.role == "serve" and not scheduled,
                                take_over=self.role == "serve", defer_store=defer_store)
        if self.role == "command" and self.engine.executor:
            self.gateway.start()
        # Alerts are routed where they are received when replicas share a database (runs
        # wait in the shared queue for a worker); on the embedded files, by the executor.
        if self.role == "serve" and self.engine.database.shared and not self.engine.executor:
            await self._start_alerts()
        if self.engine.executor and not self.engine.store_deferred:
            await self._start_executor_parts()

    async def _start_executor_parts(self) -> None:
        if self.role == "serve":
            await self._start_alerts()
        # Where runs execute; a command's events are sent by the next server or worker.
        if self.role != "command":
            try:
                await self.notifications.start()
            except Exception:  # noqa: BLE001 - runs go on; the next start catches up
                log.exception("notifications could not start")

    async def _start_alerts(self) -> None:
        try:
            await self.alerts.start()
        except Exception:  # noqa: BLE001 - alerts answer 503 until fixed
            log.exception("alert handling could not start")

    async def stop(self) -> None:
        """Stop each part, giving each at most STOP_SECONDS: a part that hangs must not
        keep the process from exiting (what it holds is durable; the next start resumes)."""
        for name, part in (("notifications", self.notifications), ("alerts", self.alerts),
                           ("gateway", self.gateway), ("run engine", self.engine)):
            try:
                await asyncio.wait_for(part.stop(), STOP_SECONDS)
            except TimeoutError:
                log.warning("the %s did not stop within %s s; exiting without it", name,
                            STOP_SECONDS)
            except Exception:  # noqa: BLE001 - the other parts still stop
                log.exception("the %s could not stop cleanly", name)

    @contextlib.asynccontextmanager
    async def started(self) -> AsyncIterator[Application]:
        """For a worker and a command: everything up before the body runs."""
        try:
            await self.start()
            yield self
        finally:
            await self.stop()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """For the front (its lifespan), in the background: the servers that run in
        processes of their own start connecting once the front has answered its host's
        first tools/list (at most START_DELAY after start), the other parts START_DELAY
        after that. Both compete with the host's first requests for this machine's CPU:
        node processes starting, fastmcp's client being imported, built-in servers built."""

        async def start_later() -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(START_DELAY):
                    await self.host_listed.wait()
            self.gateway.start(spawned_only=True)
            await asyncio.sleep(START_DELAY)
            await self.start()

        background = asyncio.create_task(start_later())
        try:
            yield
        finally:
            # Told to stop while still starting (a SIGTERM right after start): stop what
            # has started rather than finish starting first.
            background.cancel()
            await asyncio.wait({background})
            await self.stop()


class ProviderCache:
    """One LLM provider per (provider, model) choice; built on first use."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._providers: dict[tuple[str | None, str | None], Any] = {}

    def __call__(self, profile: ProfileConfig) -> Any:
        key = (profile.provider, profile.model)
        if key not in self._providers:
            from orchestrator_mcp.llm import provider_from_settings

            self._providers[key] = provider_from_settings(
                self._config.servers.llm,
                profile_provider=profile.provider, profile_model=profile.model,
            )
        return self._providers[key]


def pricer(config: Config) -> Any:
    """cost(provider, model, input tokens, output tokens) with `llm.prices` over the table."""
    prices = config.servers.llm.prices

    def cost_of(provider: str, model: str, input_tokens: int, output_tokens: int
                ) -> float | None:
        from orchestrator_mcp.llm.pricing import cost_usd

        return cost_usd(provider, model, input_tokens, output_tokens, prices)

    return cost_of


def knowledge_base(config: Config, data_dir: Path) -> KnowledgeBase | None:
    """The runbook collections, unless `knowledge.enabled` is false (opens nothing yet)."""
    settings = config.servers.knowledge
    if not settings.enabled:
        return None
    return KnowledgeBase(data_dir / "knowledge", settings.resolved(config.config_dir))


def memory_index(config: Config, data_dir: Path, kb: KnowledgeBase | None) -> KnowledgeBase:
    """The LanceDB index of agent memory (memory/service.py): its own folder, the
    knowledge embedder (shared with the runbooks' knowledge base, so a local model loads
    once). Opens nothing yet."""
    settings = config.servers.knowledge.resolved(config.config_dir)
    if kb is None:
        return KnowledgeBase(data_dir / "memory", settings)
    return KnowledgeBase(data_dir / "memory", settings, embedder=kb.embedder)


def in_process_servers(config: Config, data_dir: Path, kb: KnowledgeBase | None
                       ) -> LazyServers:
    """The built-in servers mounted beside the downstream ones: the enabled agents, and
    `knowledge` (knowledge_search for the planner); each built when first connected."""
    from orchestrator_mcp.agents import build_enabled_agents

    servers = build_enabled_agents(config.servers.agents, config.config_dir, data_dir)
    if kb is not None:
        def knowledge() -> Any:
            from orchestrator_mcp.knowledge import server as knowledge_server

            return knowledge_server.build(kb)

        servers.add("knowledge", knowledge)
    return servers


def build_application(
    config: Config, data_dir: Path, log_dir: Path | None, *, http: bool = False,
    role: Role = "serve", execute: bool = True,
) -> Application:
    settings = config.servers.gateway
    kb = knowledge_base(config, data_dir)
    gateway = Gateway(config.servers.servers, settings, log_dir,
                      in_process=in_process_servers(config, data_dir, kb))
    definitions = config.profiles.workflows
    engine = RunEngine(data_dir, gateway, config.profiles.profiles, ProviderCache(config),
                       pricer(config), settings=config.servers.runs,
                       kinds=[workflow_runs.run_kind(definitions),
                              *alert_kinds.run_kinds(config.profiles.alerts),
                              *notification_kinds.run_kinds(config.servers.notifications)],
                       audit_retention_days=config.servers.audit.retention_days,
                       memory_index=memory_index(config, data_dir, kb))
    workflows = workflow_runs.WorkflowRuns(engine, definitions)
    templates = TemplateRuns(engine, config.profiles.templates)
    schedules = ScheduleService(config.profiles.schedules, engine, workflows, templates)
    engine.add_kind(schedule_kinds.run_kind(schedules))
    alerts = AlertService(config.profiles.alerts, engine, workflows, http_token(config))
    notifications = NotificationDispatcher(config.servers.notifications, engine)
    application = Application(config, data_dir, gateway, engine, workflows, templates,
                              schedules, alerts, notifications, knowledge=kb, role=role,
                              execute=execute, http=http)
    application.front = build_front(gateway, settings, engine, application.running,
                                    http=config.servers.http if http else None, knowledge=kb,
                                    workflows=workflows, templates=templates,
                                    schedules=schedules,
                                    memory=any(p.memory.enabled
                                               for p in config.profiles.profiles.values()),
                                    on_first_listing=application.host_listed.set)
    return application


def http_token(config: Config) -> str | None:
    """The all-scopes HTTP token (ORCH_HTTP_TOKEN, applied by the loader, or http.token)."""
    return config.servers.http.token
