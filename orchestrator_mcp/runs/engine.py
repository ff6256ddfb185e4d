"""The run engine: submit, read, approve and cancel runs; owns DBOS for this data dir.

DBOS (≈0.5 s to import) is started in the background after the front is serving, so
start-up stays light; the first run-related call waits for it. Launching DBOS recovers every
run a previous process left unfinished. `serve` on the embedded files launches it only once
there is durable work (on_demand): an idle server then carries neither DBOS's memory
(≈30 MB) nor its pollers' CPU; a stdio `serve` with nothing waiting also opens our tables
only on the first call that reads or writes them (defer_store: SQLAlchemy, ≈10 MB, stays
unloaded). A `serve` that finds another process holding the data dir's executor lock (a host
restarting it while the old one still shuts down) takes over once the lock is free
(take_over).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator_mcp.config import ProfileConfig
from orchestrator_mcp.config.environment import environment
from orchestrator_mcp.config.http import PrincipalLimits
from orchestrator_mcp.config.runs import RunsSettings
from orchestrator_mcp.db.peek import finds_a_row, sqlite_path
from orchestrator_mcp.gateway import Gateway
from orchestrator_mcp.llm import LLMProvider
from orchestrator_mcp.llm.types import LLMNotConfigured
from orchestrator_mcp.runs import limits as principal_limits
from orchestrator_mcp.runs.database import Database, DatabaseError, explain_connect_error
from orchestrator_mcp.runs.errors import (
    RunConflict,
    RunError,
    RunNotFound,
    RunsUnavailable,
)
from orchestrator_mcp.runs.idempotency import Idempotency
from orchestrator_mcp.runs.idempotency import conflict as idempotency_conflict
from orchestrator_mcp.runs.idempotency import request_hash as idempotency_request_hash
from orchestrator_mcp.runs.kinds import INSTANCE, PLANNER, RunKind
from orchestrator_mcp.runs.models import (
    RunEvent,
    RunHead,
    RunMilestone,
    RunRecord,
    RunStatus,
    StepRecord,
    StopReason,
)
from orchestrator_mcp.runs.policy import DEFAULT_PROFILE
from orchestrator_mcp.runs.ports import CostOf, ProviderFor
from orchestrator_mcp.telemetry import tracing

if TYPE_CHECKING:
    import sqlalchemy as sa

    from orchestrator_mcp.knowledge.store import KnowledgeBase
    from orchestrator_mcp.memory import Memories
    from orchestrator_mcp.runs.changes import StatusListener
    from orchestrator_mcp.runs.store import RunStore
    from orchestrator_mcp.telemetry.audit import AuditEntry
    from orchestrator_mcp.telemetry.audit_store import AuditLog
    from orchestrator_mcp.telemetry.metrics import RunQueueState

__all__ = ["RunConflict", "RunEngine", "RunError", "RunNotFound", "RunsUnavailable"]

log = logging.getLogger(__name__)

DBOS_APP_NAME = "orchestrator-mcp"
WORKFLOW_VERSION = "runs-5"  # bump when a durable workflow's step sequence or names change
START_TIMEOUT = 60.0
# How often a `serve` that found the executor lock held looks whether it is free (a flock
# attempt: costs nothing measurable).
TAKE_OVER_POLL_SECONDS = 1.0
RUN_QUEUE = "orchestrator_runs"
# Runs started by other runs (delegations, workflow agent steps) queue apart, so parents
# waiting for their children can never take every slot the children need.
CHILD_QUEUE = "orchestrator_child_runs"
# Durable work beside runs (`start_durable`: notifications, storm summaries) queues
# apart with no concurrency limit: it mostly waits for a run to end, so it must never hold
# the slots runs need.
BACKGROUND_QUEUE = "orchestrator_background"
# How often a waiter re-reads a run it was not told about: every second, or, while this
# process hears status changes from the shared database (runs.changes), every 10 s.
RECHECK_SECONDS = 1.0
RECHECK_LISTENING_SECONDS = 10.0


def default_profiles(configured: dict[str, ProfileConfig]) -> dict[str, ProfileConfig]:
    profiles = dict(configured)
    profiles.setdefault(DEFAULT_PROFILE, ProfileConfig(
        description="Built-in: the whole catalog; destructive tools wait for approval."))
    return profiles


def recover_workflows_of(executor_id: str) -> None:
    """Re-enqueue the unfinished workflows of another executor (one that went silent).

    dbos 3.4 has no public call for this: `DBOS.launch()` recovers only the launching
    executor's own workflows, neither `DBOS` nor `DBOSClient` exposes recovery of another
    executor's (DBOS leaves that to a recovery service, Conductor or DBOS Cloud, which we do
    not use). So this is the one place that calls the private
    `DBOS._recover_pending_workflows`; replace it when DBOS offers a public call."""
    from dbos import DBOS

    DBOS._recover_pending_workflows([executor_id])


class RunEngine:
    def __init__(
        self,
        data_dir: Path,
        gateway: Gateway,
        profiles: dict[str, ProfileConfig],
        provider_for: ProviderFor,
        cost_of: CostOf,
        *,
        settings: RunsSettings | None = None,
        kinds: Sequence[RunKind] = (),
        audit_retention_days: float = 90,
        memory_index: KnowledgeBase | None = None,
    ) -> None:
        """`kinds`: durable run kinds besides the planner's (workflows), executed by this
        engine when it executes; the engine itself knows none of them. `memory_index`: the
        LanceDB index of agent memory (memory/service.py), kept beside our tables."""
        self.data_dir = data_dir
        self.gateway = gateway
        self.profiles = default_profiles(profiles)
        self.kinds = {kind.name: kind for kind in (PLANNER, *kinds)}
        self._instances: dict[str, Any] = {}  # kind → its DBOS configured instance
        self._audit_retention_days = audit_retention_days
        self._audit: AuditLog | None = None
        self._memory_index = memory_index
        self._memories: Memories | None = None
        self._provider_for = provider_for
        self._cost_of = cost_of
        self.settings = settings or RunsSettings()
        self._failed: str | None = None
        try:
            self.database = Database.for_data_dir(
                data_dir, environment().orchestrator.database(self.settings.database_url))
        except DatabaseError as exc:  # reported by every run call and by /readyz
            self._failed = str(exc)
            self.database = Database.for_data_dir(data_dir, None)
        self._database_url = self.database.store_url
        self._dbos_url = self.database.dbos_url
        self.executor_id = (f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
                            if self.database.shared else "local")
        self._started_at = time.time()
        self._heartbeat: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()
        self._changed: dict[str, asyncio.Event] = {}  # run id → set on its next change
        self._status_changed: dict[str, asyncio.Event] = {}  # … on its next status change
        self._listeners: list[Callable[[str], None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock_file: Any = None
        self._store: RunStore | None = None
        self.executor = False
        self._dbos: Any = None
        self._dbos_engine: sa.Engine | None = None  # ours, for DBOS on the embedded files
        self._slots = asyncio.Semaphore(self.settings.worker_concurrency)
        self._listener: StatusListener | None = None
        self._client: Any = None
        self._worker = False
        self._launched = False
        self._launching = asyncio.Lock()
        self._launch_hooks: list[Callable[[], Awaitable[None]]] = []
        self._launch_watch: asyncio.Task[None] | None = None
        self._take_over_hooks: list[Callable[[], Awaitable[None]]] = []
        self._take_over_watch: asyncio.Task[None] | None = None
        self._store_deferred = False
        self._opening = asyncio.Lock()
        self._open_hooks: list[Callable[[], Awaitable[None]]] = []
        self._hook_tasks: set[asyncio.Task[None]] = set()

    def add_kind(self, kind: RunKind) -> None:
        """Execute `kind` too: for a part built after the engine that starts runs through
        it (schedules). Only before `start`."""
        if self._ready.is_set() or self._loop is not None:
            raise RuntimeError(f"run kind {kind.name} added after the engine started")
        self.kinds[kind.name] = kind

    # ---- lifecycle -------------------------------------------------------------------

    def on_launch(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` once DBOS is launched in this process (schedules hand theirs to
        DBOS's scheduler then); a hook that fails is logged, the others still run."""
        self._launch_hooks.append(hook)

    def on_take_over(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` when this process becomes the executor after it started as a
        submitter (`take_over`): the parts that only the executor runs start then."""
        self._take_over_hooks.append(hook)

    def on_open(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run `hook` (in a task of its own) once a deferred store opens (`defer_store`):
        the parts that read our tables from the start (alerts) start then."""
        self._open_hooks.append(hook)

    @property
    def store_deferred(self) -> bool:
        """Whether our tables open only on the first call that needs them."""
        return self._store_deferred

    async def start(self, *, execute: bool = True, worker: bool = False,
                    on_demand: bool = False, take_over: bool = False,
                    defer_store: bool = False) -> None:
        """Open the store and DBOS. The process that gets the data dir's executor lock
        launches DBOS (which recovers unfinished runs) and executes runs; any other one
        submits, approves and cancels through the system database and reads the table.
        `worker`: this process only executes what others queue (`worker` command).
        `on_demand` (`serve` on the embedded files): launch DBOS at once only when its
        system database holds unfinished or queued work; otherwise on the first
        submission, approval or cancel, or when another process (the CLI) queues work,
        looked for every `poll_seconds`.
        `take_over` (`serve` on the embedded files): when another process holds the executor
        lock, take it once that process exits, and execute from then on.
        `defer_store` (stdio `serve` with nothing that reads the tables from the start): with
        `on_demand` and no durable work waiting, open our tables on the first call that
        needs them (`ready`), or when DBOS launches."""
        self._loop = asyncio.get_running_loop()
        self._worker = worker
        if self._failed:
            self._ready.set()
            return
        try:
            # On a shared database every process asked to execute does; on the embedded
            # files only the one holding the data dir's lock.
            if not self.database.shared:
                await asyncio.to_thread(self.data_dir.mkdir, parents=True, exist_ok=True)
            self.executor = execute and (self.database.shared or self._take_lock())
            if (defer_store and on_demand and self.executor and not self.database.shared
                    and await self._nothing_waiting()):
                self._store_deferred = True
                self._launch_watch = asyncio.create_task(self._launch_when_queued(),
                                                         name="runs:launch-on-demand")
                return
            await self._open_store(purge=execute)
            if self.database.shared:
                # Runs this process waits for may execute in another one.
                from orchestrator_mcp.runs.changes import StatusListener

                self._listener = StatusListener(
                    self._dbos_url, lambda run_id: self._notify(run_id, status=True),
                    self._wake_all, self.database.scrub)
                self._listener.start()
            if self.executor:
                await self._begin_executing(on_demand=on_demand)
            else:
                await asyncio.to_thread(importlib.import_module, "dbos")
                from dbos import DBOS, DBOSClient

                # A front, or the CLI beside a server still starting, may come before any
                # executor created DBOS's tables.
                await asyncio.to_thread(DBOS.migrate, self._dbos_url)
                self._client = await asyncio.to_thread(
                    DBOSClient, system_database_url=self._dbos_url)
                if take_over and execute and not self.database.shared:
                    self._take_over_watch = asyncio.create_task(
                        self._take_over_when_free(on_demand=on_demand), name="runs:take-over")
        except RunsUnavailable:
            pass  # DBOS could not launch: said and logged by _launch
        except Exception as exc:  # noqa: BLE001 - reported on every run call instead
            self._failed = self.database.scrub(f"the run engine could not start: {exc}")
            log.error("%s", self._failed)
        finally:
            self._ready.set()

    async def _open_store(self, *, purge: bool) -> None:
        await asyncio.to_thread(importlib.import_module, "sqlalchemy")
        from orchestrator_mcp.runs.store import RunStore

        try:
            self._store = await asyncio.to_thread(RunStore, self._database_url)
        except DatabaseError:
            raise
        except Exception as exc:  # noqa: BLE001 - driver errors vary
            raise explain_connect_error(self.database, exc) from None
        from orchestrator_mcp.telemetry.audit_store import AuditLog

        self._audit = await asyncio.to_thread(AuditLog, self._db.engine,
                                              self._audit_retention_days)
        if purge:
            await asyncio.to_thread(self._audit.purge)
        if self._memory_index is not None:
            from orchestrator_mcp.memory.service import Memories
            from orchestrator_mcp.memory.store import MemoryStore

            self._memories = Memories(MemoryStore(self._db.engine), self._memory_index)
        from orchestrator_mcp.telemetry import metrics

        store = self._db
        metrics.APPROVALS_PENDING.set_function(
            lambda: store.count(RunStatus.AWAITING_APPROVAL))
        metrics.RUN_QUEUE.source = self.queue_state

    async def _open_deferred_store(self) -> None:
        """Open the tables `start` left closed (defer_store), once; then the open hooks."""
        async with self._opening:
            if not self._store_deferred:
                return
            try:
                await self._open_store(purge=True)
            except Exception as exc:  # noqa: BLE001 - reported on every run call instead
                self._failed = self.database.scrub(f"the run engine could not start: {exc}")
                log.error("%s", self._failed)
            self._store_deferred = False
        if self._failed:
            return
        for hook in self._open_hooks:
            task = asyncio.create_task(self._run_hook(hook), name="runs:on-open")
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_tasks.discard)

    @staticmethod
    async def _run_hook(hook: Callable[[], Awaitable[None]]) -> None:
        try:
            await hook()
        except Exception:  # noqa: BLE001 - runs go on without what it sets up
            log.exception("a part could not be set up after the run engine opened its tables")

    async def _begin_executing(self, *, on_demand: bool) -> None:
        if on_demand and not self.database.shared and await self._nothing_waiting():
            self._launch_watch = asyncio.create_task(self._launch_when_queued(),
                                                     name="runs:launch-on-demand")
        else:
            await self._launch()

    async def _take_over_when_free(self, *, on_demand: bool) -> None:
        """Take the executor lock once the process holding it exits, then execute: launch
        DBOS (which recovers what that process left unfinished) and start the parts only
        the executor runs. Until then, calls go through the DBOS client as before."""
        while not await asyncio.to_thread(self._take_lock, quiet=True):
            await asyncio.sleep(TAKE_OVER_POLL_SECONDS)
        log.info("the process that executed runs for %s has stopped; this process (pid %s) "
                 "executes them now", self.data_dir, os.getpid())
        self.executor = True
        with contextlib.suppress(RunsUnavailable):  # logged; every run call says so
            await self._begin_executing(on_demand=on_demand)
        client, self._client = self._client, None
        if client is not None:
            await asyncio.to_thread(client.destroy)
        for hook in self._take_over_hooks:
            try:
                await hook()
            except Exception:  # noqa: BLE001 - runs go on without what it sets up
                log.exception("a part could not be set up after taking over the runs")

    def _take_lock(self, *, quiet: bool = False) -> bool:
        handle = (self.data_dir / "executor.lock").open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not quiet:
                handle.seek(0)
                log.info("pid %s executes runs for %s; this process submits to it and "
                         "takes over when it stops", handle.read().strip()
                         or "another process", self.data_dir)
            handle.close()
            return False
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle
        return True

    async def _launch(self) -> None:
        """Launch DBOS in this executing process (once): recovers what a previous process
        left unfinished, then polls the queues; then the launch hooks."""
        if self._store_deferred:
            await self._open_deferred_store()
        async with self._launching:
            if self._launched:
                return
            if self._failed:
                raise RunsUnavailable(self._failed)
            try:
                await asyncio.to_thread(importlib.import_module, "dbos")
                self._launch_dbos()
                from dbos import DBOS

                for queue in (RUN_QUEUE, CHILD_QUEUE):
                    await DBOS.register_queue_async(
                        queue, worker_concurrency=self.settings.worker_concurrency,
                        concurrency=(self.settings.global_concurrency
                                     if self.database.shared else None),
                        polling_interval_sec=self.settings.poll_seconds(
                            shared=self.database.shared, worker=self._worker))
                await DBOS.register_queue_async(BACKGROUND_QUEUE)
                if self.database.shared:
                    await asyncio.to_thread(self._beat)
                    self._heartbeat = asyncio.create_task(self._heartbeats(),
                                                          name="runs:heartbeat")
            except Exception as exc:  # noqa: BLE001 - every run call reports it
                self._failed = self.database.scrub(f"the run engine could not start: {exc}")
                log.error("%s", self._failed)
                raise RunsUnavailable(self._failed) from None
            self._launched = True
            watch, self._launch_watch = self._launch_watch, None
            if watch is not None and watch is not asyncio.current_task():
                watch.cancel()
            for hook in self._launch_hooks:
                try:
                    await hook()
                except Exception:  # noqa: BLE001 - runs go on without what it sets up
                    log.exception("a part could not be set up after the run engine started")

    async def _launched_here(self) -> None:
        """Before a DBOS call in the executing process: DBOS launched."""
        if not self._launched:
            await self._launch()

    async def _launch_when_queued(self) -> None:
        """Before DBOS is launched on demand: launch it once another process (the CLI)
        has queued work in the system database."""
        interval = self.settings.poll_seconds(shared=False, worker=False)
        while not self._launched:
            await asyncio.sleep(interval)
            try:
                waiting = await asyncio.to_thread(self._durable_work_waiting)
            except Exception:  # noqa: BLE001 - a locked or damaged file: look again
                log.warning("could not look for queued runs in %s", self._dbos_url,
                            exc_info=True)
                continue
            if waiting:
                with contextlib.suppress(RunsUnavailable):  # logged, and every call says so
                    await self._launch()
                return

    async def _nothing_waiting(self) -> bool:
        """No durable work waiting (on_demand may wait); when the file cannot be read,
        False: DBOS launches and says what is wrong."""
        try:
            return not await asyncio.to_thread(self._durable_work_waiting)
        except Exception:  # noqa: BLE001 - a locked or damaged file
            log.warning("could not look for queued runs in %s", self._dbos_url, exc_info=True)
            return False

    def _durable_work_waiting(self) -> bool:
        """Whether DBOS's system database (embedded files) holds a workflow that has not
        ended: queued by another process, or left unfinished by one that stopped.
        Read-only through sqlite3, so that nothing of DBOS is loaded to ask."""
        return finds_a_row(sqlite_path(self._dbos_url),
                           "SELECT 1 FROM workflow_status WHERE status IN "
                           "('PENDING', 'ENQUEUED', 'DELAYED') LIMIT 1")

    def _launch_dbos(self) -> None:
        from dbos import DBOS, DBOSConfig

        from orchestrator_mcp.runs.ports import RunPorts
        from orchestrator_mcp.runs.steps import RunSteps

        assert self._audit is not None
        steps = RunSteps(RunPorts(
            store=self._db, audit=self._audit, memory=self._memories, tools=self.gateway,
            profiles=self.profiles,
            provider_for=self._provider_for, cost_of=self._cost_of, children=self,
            notify=self._notify, connect_timeout=self.gateway.settings.connect_timeout))
        self._instances = {name: kind.build(steps) for name, kind in self.kinds.items()}
        config: DBOSConfig = {
            "name": DBOS_APP_NAME,
            "system_database_url": self._dbos_url,
            "application_version": WORKFLOW_VERSION,
            "executor_id": self.executor_id,
            "log_level": "WARNING",
            "notification_listener_polling_interval_sec": 0.1,
        }
        if not self.database.shared:
            # DBOS's own SQLite engine (IMMEDIATE transactions, foreign keys, a 30 s busy
            # timeout) plus WAL and synchronous=NORMAL, as our tables have: its rollback
            # journal with a full sync cost each step's checkpoint a few times more.
            from orchestrator_mcp.db.engines import sqlite_engine

            self._dbos_engine = sqlite_engine(self._dbos_url, busy_timeout_ms=30_000,
                                              immediate=True, foreign_keys=True)
            config["system_database_engine"] = self._dbos_engine
        self._dbos = DBOS(config=config)
        DBOS.launch()

    # ---- replicas on a shared database -------------------------------------------------

    def _beat(self) -> None:
        self._db.heartbeat(self.executor_id, socket.gethostname(), os.getpid(),
                             self._started_at)

    async def _heartbeats(self) -> None:
        """Say this executor is alive; recover the runs of executors that went silent (their
        workflows are re-enqueued, and DBOS's checkpoints mean completed steps don't run
        again). Every live executor does this; recovering the same executor twice is
        harmless, because a recovered workflow is dequeued by exactly one executor."""
        while True:
            await asyncio.sleep(self.settings.heartbeat_seconds)
            try:
                await asyncio.to_thread(self._beat)
                cutoff = time.time() - self.settings.executor_dead_after_seconds
                for dead in await asyncio.to_thread(self._db.silent_executors, cutoff):
                    log.warning("executor %s has been silent for %.0f s: recovering its runs",
                                dead, self.settings.executor_dead_after_seconds)
                    await asyncio.to_thread(recover_workflows_of, dead)
                    await asyncio.to_thread(self._db.forget_executor, dead, cutoff)
            except Exception:  # noqa: BLE001 - the database may be down for a while
                log.exception("heartbeat failed; retrying")

    def queue_state(self) -> RunQueueState:
        """The run queues as DBOS has them, the live executors and the oldest approval wait
        (blocking: the sidecar's scrape calls it in a thread)."""
        from dbos import DBOS

        from orchestrator_mcp.telemetry.metrics import RunQueueState

        lister = self._client if self._client is not None else DBOS if self._dbos else None
        queued: dict[str, int] = dict.fromkeys((RUN_QUEUE, CHILD_QUEUE), 0)
        executing: dict[str, int] = {}
        if not self.database.shared:
            # One executor, which starts most runs without the queue: the runs table says.
            waiting, children_waiting, running = self._db.queue_counts()
            queued = {RUN_QUEUE: waiting, CHILD_QUEUE: children_waiting}
            executing = {self.executor_id: running}
            lister = None
        if lister is not None:
            for workflow in lister.list_queued_workflows(
                    queue_name=[RUN_QUEUE, CHILD_QUEUE], status=["ENQUEUED", "PENDING"],
                    load_input=False, load_output=False):
                if workflow.status == "ENQUEUED":
                    queued[workflow.queue_name or RUN_QUEUE] += 1
                else:
                    executor = workflow.executor_id or "unknown"
                    executing[executor] = executing.get(executor, 0) + 1
        now = time.time()
        live = self._live_executors(now)
        for executor in live:  # an idle replica shows as 0, not as no data
            executing.setdefault(executor, 0)
        waiting_since = self._db.oldest_waiting_since()
        return RunQueueState(
            queued=queued, executing=executing, executors_live=len(live),
            oldest_approval_seconds=max(0.0, now - waiting_since) if waiting_since else 0.0)

    def _live_executors(self, now: float) -> list[str]:
        if self.database.shared:
            return self._db.live_executors(now - self.settings.executor_dead_after_seconds)
        if self.executor:
            return [self.executor_id]
        # Embedded files: the executor is the process whose pid the lock file holds (its
        # executor id is "local" like ours).
        try:
            pid = int((self.data_dir / "executor.lock").read_text().strip() or 0)
        except (OSError, ValueError):
            return []
        if pid <= 0:
            return []
        try:
            os.kill(pid, 0)
        except PermissionError:
            pass  # alive, another user's
        except OSError:
            return []
        return [self.executor_id]

    async def healthy(self) -> str | None:
        """None when the engine can use its database, else why not."""
        if not self._ready.is_set():
            return "the run engine is starting"
        if self._failed:
            return self._failed
        if self._store_deferred:
            return None  # opened by the first call that needs it
        try:
            await asyncio.wait_for(asyncio.to_thread(self._db.ping), 5)
        except Exception as exc:  # noqa: BLE001
            return str(explain_connect_error(self.database, exc))
        return None

    async def stop(self) -> None:
        from orchestrator_mcp.telemetry import metrics

        if metrics.RUN_QUEUE.source == self.queue_state:
            metrics.RUN_QUEUE.source = None
        if self._listener is not None:
            await self._listener.stop()
            self._listener = None
        for watch in (self._take_over_watch, self._launch_watch, *self._hook_tasks):
            if watch is not None:
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch
        self._take_over_watch = self._launch_watch = None
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
            self._heartbeat = None
        if self._client is not None:
            await asyncio.to_thread(self._client.destroy)
            self._client = None
        if self._dbos is not None:
            from dbos import DBOS

            await asyncio.to_thread(DBOS.destroy, destroy_registry=False)
            self._dbos = None
        if self._dbos_engine is not None:  # DBOS leaves an engine it was given open
            self._dbos_engine.dispose()
            self._dbos_engine = None
        if self._store is not None:
            self._store.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    @property
    def _db(self) -> RunStore:
        if self._store is None:
            raise RunsUnavailable(self._failed or "the run engine is still starting; try "
                                  "again shortly")
        return self._store

    async def ready(self) -> None:
        """Wait until the engine can take requests; RunsUnavailable when it cannot."""
        try:
            await asyncio.wait_for(self._ready.wait(), START_TIMEOUT)
        except TimeoutError:
            raise RunsUnavailable("the run engine is still starting; try again shortly"
                                  ) from None
        if self._store_deferred:
            await self._open_deferred_store()
        if self._failed:
            raise RunsUnavailable(self._failed)

    async def memories(self) -> Memories:
        """Agent memory (memory/service.py), once the engine is ready."""
        await self.ready()
        if self._memories is None:
            raise RunsUnavailable("agent memory is not set up in this process")
        return self._memories

    async def database_engine(self) -> sa.Engine:
        """`sql_engine` once the engine is ready (what the HTTP face, which starts first,
        asks for its managed API keys)."""
        await self.ready()
        return self._db.engine

    @property
    def sql_engine(self) -> sa.Engine:
        """The SQLAlchemy engine of our tables' database, for the parts that keep their own
        tables beside the runs (alerts). Available once `ready()` returns."""
        return self._db.engine

    # ---- runs ------------------------------------------------------------------------

    def profile(self, name: str) -> ProfileConfig:
        try:
            return self.profiles[name]
        except KeyError:
            known = ", ".join(sorted(self.profiles))
            raise RunError(f"unknown profile '{name}'; profiles: {known}") from None

    def model_for(self, profile: str) -> LLMProvider | None:
        """The model a profile's runs use, or None when none is configured."""
        try:
            return self._provider_for(self.profile(profile))
        except LLMNotConfigured:
            return None

    async def submit(
        self,
        goal: str,
        profile: str = DEFAULT_PROFILE,
        context: dict[str, Any] | None = None,
        *,
        parent_id: str | None = None,
        source: str = "mcp",
        run_id: str | None = None,
        idempotency: Idempotency | None = None,
        asked: dict[str, Any] | None = None,
        owner: str | None = None,
        limits: PrincipalLimits | None = None,
    ) -> RunRecord:
        """Queue a run. With `run_id`, submitting the same id again changes nothing; with
        `idempotency`, the same key and request give the run the first submission made
        (`asked`: what the caller asked, when the engine is given something derived from
        it, e.g. the agent a router picked). `owner`: the principal id that starts it
        (default: the parent's owner, else 'system:<source>'); `limits`: that principal's,
        checked first (runs/limits.py)."""
        record = await self.create(goal, profile, context, parent_id=parent_id, source=source,
                                   run_id=run_id, idempotency=idempotency, asked=asked,
                                   owner=owner, limits=limits)
        await self.enqueue(record.id)  # again for a replay: a no-op, or the lost first one
        return record

    async def create(
        self,
        goal: str,
        profile: str = DEFAULT_PROFILE,
        context: dict[str, Any] | None = None,
        *,
        parent_id: str | None = None,
        source: str = "mcp",
        run_id: str | None = None,
        idempotency: Idempotency | None = None,
        asked: dict[str, Any] | None = None,
        owner: str | None = None,
        limits: PrincipalLimits | None = None,
    ) -> RunRecord:
        """Validate and record a run without queueing it (a workflow queues its child runs
        itself, so that DBOS records them as its children)."""
        goal = goal.strip()
        if not goal:
            raise RunError("the goal is empty; say what the run should achieve")
        if len(goal) > 10_000:
            raise RunError(f"the goal is {len(goal)} characters; keep it under 10,000 and "
                           "put material in context")
        chosen = self.profile(profile)
        self._provider_for(chosen)  # raises a how-to-configure error when there is no LLM
        await self.ready()
        now = time.time()
        if idempotency is not None:
            run_id = idempotency.run_id("run")
        owner = await self._owner(owner, parent_id, source)
        if limits and parent_id is None:
            await self._admit(owner, limits, run_id)
        record = RunRecord(id=run_id or f"run_{uuid.uuid4().hex[:16]}", goal=goal, profile=profile,
                           status=RunStatus.QUEUED, parent_id=parent_id, source=source,
                           owner=owner, context=context or {}, created_at=now, updated_at=now)
        return await self._record(record, idempotency, asked or {
            "kind": "run", "goal": goal, "profile": profile, "context": context or {}})

    async def submit_record(self, record: RunRecord, *, kind: str,
                            idempotency: Idempotency | None = None,
                            request: dict[str, Any] | None = None,
                            limits: PrincipalLimits | None = None) -> RunRecord:
        """Record and queue a run of another kind (`workflows.submit` builds and checks
        workflow runs, its id derived from `idempotency` when given, with `request` what
        was asked). With an id already recorded, nothing changes. Owner and limits as
        for `submit`."""
        if kind not in self.kinds:
            raise RunError(f"this engine does not execute {kind} runs")
        await self.ready()
        owner = await self._owner(record.owner, record.parent_id, record.source)
        if limits and record.parent_id is None:
            await self._admit(owner, limits, record.id)
        record = record.model_copy(update={"owner": owner})
        record = await self._record(record, idempotency, request or {})
        await self.enqueue(record.id, kind=kind)
        return record

    async def _owner(self, owner: str | None, parent_id: str | None, source: str) -> str:
        if owner is not None:
            return owner
        if parent_id is not None:
            parent = await asyncio.to_thread(self._db.get, parent_id, with_steps=False)
            if parent is not None and parent.owner is not None:
                return parent.owner
        return f"system:{source}"  # alerts, schedules: nobody's own (read_all sees them)

    async def _admit(self, owner: str, limits: PrincipalLimits, run_id: str | None) -> None:
        """Refuse a new run over `owner`'s limits; a repeat of a recorded one passes."""
        if run_id is not None and await asyncio.to_thread(
                self._db.get, run_id, with_steps=False) is not None:
            return
        now = time.time()
        active, spent = await asyncio.to_thread(self._db.usage_of, owner,
                                                principal_limits.month_start(now))
        principal_limits.check(owner, limits, active, spent, now)

    async def _record(self, record: RunRecord, idempotency: Idempotency | None,
                      request: dict[str, Any]) -> RunRecord:
        asked = idempotency_request_hash(request) if idempotency is not None else None
        kept = await asyncio.to_thread(self._db.create, record, asked)
        if kept is None or idempotency is None:
            return record
        if kept != asked:
            raise idempotency_conflict(idempotency.key, record.id)
        idempotency.replayed = True
        return await self.get(record.id)

    # DBOS calls differ between the executing process (DBOS itself) and the others (a
    # client of the same system database); these three are all the engine needs.

    async def enqueue(self, run_id: str, *, kind: str = "run", child: bool = False) -> None:
        queue_name = CHILD_QUEUE if child else RUN_QUEUE
        if self._client is not None:
            from dbos import EnqueueOptions

            run_kind = self.kinds[kind]
            options: EnqueueOptions = {"queue_name": queue_name, "workflow_id": run_id,
                                       "workflow_name": run_kind.workflow_name,
                                       "class_name": run_kind.class_name,
                                       "instance_name": INSTANCE,
                                       "app_version": WORKFLOW_VERSION}
            await self._client.enqueue_async(options, run_id)
            return
        await self._launched_here()
        from dbos import DBOS, SetWorkflowID

        with SetWorkflowID(run_id):
            if not self.database.shared:
                # The embedded files have one executor, this process: start the run now
                # instead of at the queue's next poll (`slot` keeps worker_concurrency).
                # DBOS records it as pending first, so a crash recovers it all the same,
                # and starting an id that exists already starts nothing.
                await DBOS.start_workflow_async(self._instances[kind].run, run_id)
                return
            queue = await DBOS.retrieve_queue_async(queue_name)
            await queue.enqueue_async(self._instances[kind].run, run_id)

    @contextlib.asynccontextmanager
    async def slot(self, *, child: bool) -> AsyncIterator[None]:
        """One of this process's `worker_concurrency` run slots, held while a run
        executes (runs.steps.RunSteps.admitted); children take none."""
        if child:
            yield
            return
        async with self._slots:
            yield

    async def _send(self, run_id: str, message: Any, topic: str) -> None:
        if self._client is not None:
            await self._client.send_async(run_id, message, topic)
            return
        await self._launched_here()
        from dbos import DBOS

        await DBOS.send_async(run_id, message, topic)

    async def _cancel(self, run_id: str) -> None:
        if self._client is not None:
            await self._client.cancel_workflow_async(run_id)
            return
        await self._launched_here()
        from dbos import DBOS

        await DBOS.cancel_workflow_async(run_id)

    # ---- durable work beside runs ------------------------------------------------------

    async def start_durable(self, kind: str, workflow_id: str, *args: Any) -> None:
        """Start `kind`'s workflow (`run(*args)`, JSON arguments) under `workflow_id`, on the
        background queue; starting the same id again changes nothing. For durable work that
        a kind defined outside runs/ does beside runs (notifications, storm summaries);
        any process may call it, an executor then runs it."""
        if kind not in self.kinds:
            raise RunError(f"this engine does not execute {kind} work")
        await self.ready()
        if self._client is not None:
            from dbos import EnqueueOptions

            run_kind = self.kinds[kind]
            options: EnqueueOptions = {"queue_name": BACKGROUND_QUEUE,
                                       "workflow_id": workflow_id,
                                       "workflow_name": run_kind.workflow_name,
                                       "class_name": run_kind.class_name,
                                       "instance_name": INSTANCE,
                                       "app_version": WORKFLOW_VERSION}
            await self._client.enqueue_async(options, *args)
            return
        await self._launched_here()
        from dbos import DBOS, SetWorkflowID

        with SetWorkflowID(workflow_id):
            queue = await DBOS.retrieve_queue_async(BACKGROUND_QUEUE)
            await queue.enqueue_async(self._instances[kind].run, *args)

    async def get(self, run_id: str, *, viewer: str | None = None,
                  with_steps: bool = True) -> RunRecord:
        """The run; with `viewer` (a principal id), only when that principal owns it — to
        anyone else it does not exist (a run id says nothing of whose it is)."""
        await self.ready()
        record = await asyncio.to_thread(self._db.get, run_id, with_steps=with_steps)
        if record is None or (viewer is not None and record.owner != viewer):
            raise RunNotFound(f"no run '{run_id}'; list_runs shows the runs there are")
        return record

    async def list(self, **filters: Any) -> list[RunRecord]:
        await self.ready()
        return await asyncio.to_thread(lambda: self._db.list(**filters))

    async def events_after(self, run_id: str, after: int) -> tuple[RunHead, list[RunEvent]]:
        """The run's state and its stream events numbered above `after` (a batch)."""
        await self.ready()
        head, events = await asyncio.to_thread(self._db.events_after, run_id, after)
        if head is None:
            raise RunNotFound(f"no run '{run_id}'; list_runs shows the runs there are")
        return head, events

    async def milestones(self, since: float, after: tuple[float, str, int] | None = None,
                         limit: int = 500) -> list[RunMilestone]:
        """Approval waits and ends of every run, at `since` or later, oldest first (a page
        of `limit`; `after`: the last key of the previous page)."""
        await self.ready()
        return await asyncio.to_thread(self._db.milestones, since, after, limit)

    def change_signal(self, run_id: str) -> asyncio.Event:
        """Set when this process next sees the run change (its executor is here); a run
        executed elsewhere is seen only by reading the database again."""
        return self._changed.setdefault(run_id, asyncio.Event())

    def _notify(self, run_id: str, *, status: bool = False) -> None:
        """Called by the workflow when a run changes (`status`: its status did); wakes
        `wait`ers and listeners."""
        if self._loop is None:
            return
        events = [self._changed.pop(run_id, None)]
        if status:
            events.append(self._status_changed.pop(run_id, None))
        for event in events:
            if event is not None:
                self._loop.call_soon_threadsafe(event.set)
        for listener in self._listeners:
            self._loop.call_soon_threadsafe(listener, run_id)

    def _wake_all(self) -> None:
        """Wake every waiter to re-read (changes may have been missed)."""
        for waiting in (self._changed, self._status_changed):
            for event in waiting.values():
                event.set()
            waiting.clear()

    def on_change(self, listener: Callable[[str], None]) -> None:
        """`listener(run_id)` runs on the engine's loop whenever a run changes."""
        self._listeners.append(listener)

    async def wait(self, run_id: str, timeout: float, *, until_attention: bool = True,
                   on_progress: Callable[[list[RunEvent]], Awaitable[None]] | None = None,
                   ) -> RunRecord:
        """Wait until the run finishes (or, with `until_attention`, needs an approval), then
        return it. Woken by the executing workflow, or, for a run executed by another
        process on a shared database, by its status notification (runs.changes); re-reads
        anyway every RECHECK_SECONDS (RECHECK_LISTENING_SECONDS while notifications come).
        Each wake reads the run's status only; with `on_progress`, also its new stream
        events, which it is given."""
        deadline = time.monotonic() + timeout
        after = 0
        wakes = self._changed if on_progress is not None else self._status_changed
        while True:
            event = wakes.setdefault(run_id, asyncio.Event())
            if on_progress is None:
                head = await self._head(run_id)
            else:
                head, events = await self.events_after(run_id, after)
                if events:
                    after = max(after, events[-1].id)
                    await on_progress(events)
            if head.status.finished or (
                    until_attention and head.status is RunStatus.AWAITING_APPROVAL):
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            told = (on_progress is None and self._listener is not None
                    and self._listener.listening)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(
                    remaining, RECHECK_LISTENING_SECONDS if told else RECHECK_SECONDS))
        return await self.get(run_id)

    async def _head(self, run_id: str) -> RunHead:
        await self.ready()
        head = await asyncio.to_thread(self._db.head, run_id)
        if head is None:
            raise RunNotFound(f"no run '{run_id}'; list_runs shows the runs there are")
        return head

    async def approve(
        self,
        run_id: str,
        approved: bool,
        *,
        modified_arguments: dict[str, Any] | None = None,
        reason: str | None = None,
        decided_by: str,
        via: str | None = None,
    ) -> RunRecord:
        """Decide on the call `run_id` waits for; every face (MCP, HTTP, CLI) comes here.
        `decided_by`: the deciding principal's id (four-eyes rules compare it)."""
        from orchestrator_mcp.runs import approvals

        record = await self.get(run_id)
        decision = approvals.decide(record, approved, modified_arguments=modified_arguments,
                                    reason=reason, decided_by=decided_by, via=via)
        entry = self.gateway.catalog.get(record.pending_approval.tool) \
            if record.pending_approval else None
        if modified_arguments is not None and entry is not None:
            await asyncio.to_thread(approvals.check_arguments, entry.name,
                                    entry.tool.input_schema, modified_arguments)
        await self._send(run_id, decision.model_dump(), approvals.topic(decision.call_id))
        return await self.wait_for_change(run_id, record.updated_at)

    async def wait_for_change(self, run_id: str, since: float, timeout: float = 5) -> RunRecord:
        deadline = time.monotonic() + timeout
        while True:
            record = await self.get(run_id)
            if record.updated_at > since or time.monotonic() >= deadline:
                return record
            await asyncio.sleep(0.02)

    async def cancel(self, run_id: str, *, viewer: str | None = None) -> RunRecord:
        record = await self.get(run_id, viewer=viewer, with_steps=False)
        if record.status.finished:
            raise RunConflict(f"run '{run_id}' already ended ({record.status.value})")
        await self._cancel(run_id)
        await asyncio.to_thread(self._db.update, run_id, status=RunStatus.CANCELLED,
                                stop_reason=StopReason.CANCELLED, error="cancelled on request")
        self._notify(run_id, status=True)
        record = await self.get(run_id)
        tracing.run_finished(record)  # the workflow, cancelled, never reaches its finish step
        return record

    async def annotate(self, run_id: str, summary: str, **detail: Any) -> None:
        """Add a note from outside the run (an alert resolved, say) to its history."""
        await self.ready()
        step = StepRecord(n=0, kind="note", at=time.time(), summary=summary, detail=detail)
        if not await asyncio.to_thread(self._db.add_note, run_id, step):
            raise RunNotFound(f"no run '{run_id}'; list_runs shows the runs there are")
        self._notify(run_id)

    async def count(self, status: RunStatus) -> int:
        await self.ready()
        return await asyncio.to_thread(self._db.count, status)

    async def unfinished(self, run_ids: Iterable[str]) -> set[str]:
        """Which of these runs have not ended (one query)."""
        await self.ready()
        ids = list(run_ids)
        return await asyncio.to_thread(self._db.unfinished_among, ids) if ids else set()

    async def audit(self, *, run_id: str | None = None, tool: str | None = None,
                    kind: str | None = None, since: float | None = None, limit: int = 100,
                    ) -> list[AuditEntry]:
        """The audit log, newest first."""
        await self.ready()
        assert self._audit is not None
        return await asyncio.to_thread(self._audit.query, run_id=run_id, tool=tool, kind=kind,
                                       since=since, limit=limit)

    async def record_audit(self, entries: list[dict[str, Any]]) -> None:
        """Audit entries from outside runs (hosts' direct calls), in one transaction."""
        await self.ready()
        assert self._audit is not None
        await asyncio.to_thread(self._audit.record_many, entries)
