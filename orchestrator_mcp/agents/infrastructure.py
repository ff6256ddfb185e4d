"""The infrastructure agent: systemd units, Docker containers (CLI) and an AWS summary (boto3).

Reading tools are read-only; systemd start/stop/restart are destructive and say so in their
annotations, so approvals and crash recovery treat them as such. Host commands run through
`run_command` (argument lists, timeouts, no shell); boto3 is imported only when AWS is asked.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Annotated, Any, Literal

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import AfterValidator, BaseModel, Field

from orchestrator_mcp.agents._aws import AwsSummary, Region, aws_summary_sync
from orchestrator_mcp.agents._systemd import JournalResult, Unit, command_error, read_journal
from orchestrator_mcp.agents.commands import CommandResult, require_binary, run_command
from orchestrator_mcp.agents.infrastructure_settings import InfrastructureAgentSettings

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=False)
AWS_READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False,
                                idempotent_hint=True, open_world_hint=True)
START_STOP = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True,
                             open_world_hint=False)
RESTART = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False,
                          open_world_hint=False)
_CONTAINER = re.compile(r"^(?:[a-zA-Z0-9][a-zA-Z0-9_.-]+|[0-9a-f]{1,64})$")
_DOCKER_DOWN = ("Cannot connect to the Docker daemon", "error during connect",
                "permission denied while trying to connect")
_STATUS_PROPERTIES = ("Id", "Description", "LoadState", "ActiveState", "SubState",
                      "UnitFileState", "MainPID", "ExecMainStartTimestamp", "Result",
                      "NRestarts", "FragmentPath")


def check_container(name: str) -> str:
    """A container name or id by Docker's rules ([a-zA-Z0-9][a-zA-Z0-9_.-]+, or hex id)."""
    name = name.strip().removeprefix("/")
    if not _CONTAINER.match(name):
        raise ValueError(f"{name!r} is not a valid container name or id (Docker allows "
                         "[a-zA-Z0-9][a-zA-Z0-9_.-]+, or a hex id)")
    return name


Container = Annotated[str, Field(max_length=255, description="container name or id"),
                      AfterValidator(check_container)]
Lines = Annotated[int, Field(ge=1, le=10_000)]


class UnitStatus(BaseModel):
    unit: str
    description: str | None
    load_state: str = Field(description="loaded, not-found, masked, ...")
    active_state: str = Field(description="active, inactive, failed, activating, ...")
    sub_state: str
    unit_file_state: str | None
    main_pid: int | None
    started_at: str | None = Field(description="ExecMainStartTimestamp, as systemd gives it")
    result: str | None
    restarts: int | None
    fragment_path: str | None


class FailedUnit(BaseModel):
    unit: str
    load_state: str
    active_state: str
    sub_state: str
    description: str


class UnitAction(BaseModel):
    unit: str
    action: Literal["start", "stop", "restart"]
    status: UnitStatus = Field(description="the unit's state after the action")


class DockerContainer(BaseModel):
    id: str
    names: str
    image: str
    state: str
    status: str
    ports: str
    created: str
    running_for: str


class ContainerLogLine(BaseModel):
    time: str | None
    stream: Literal["stdout", "stderr"]
    text: str


class ContainerLogs(BaseModel):
    container: str
    lines: list[ContainerLogLine] = Field(description="oldest first")
    truncated: bool
    note: str | None = None


class ContainerState(BaseModel):
    id: str
    name: str
    image: str | None
    status: str
    running: bool
    paused: bool
    restarting: bool
    oom_killed: bool
    dead: bool
    pid: int | None
    exit_code: int | None
    error: str | None
    started_at: str | None
    finished_at: str | None
    health: str | None
    restart_count: int | None


def _none(value: str | None) -> str | None:
    return value if value not in (None, "", "n/a", "[not set]") else None


def _parse_status(text: str) -> UnitStatus:
    props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    pid = int(props["MainPID"]) if props.get("MainPID", "").isdigit() else None
    restarts = props.get("NRestarts", "")
    return UnitStatus(
        unit=props.get("Id", ""), description=_none(props.get("Description")),
        load_state=props.get("LoadState", "unknown"),
        active_state=props.get("ActiveState", "unknown"),
        sub_state=props.get("SubState", "unknown"),
        unit_file_state=_none(props.get("UnitFileState")), main_pid=pid or None,
        started_at=_none(props.get("ExecMainStartTimestamp")),
        result=_none(props.get("Result")), restarts=int(restarts) if restarts.isdigit() else None,
        fragment_path=_none(props.get("FragmentPath")))


def _docker_error(result: CommandResult, container: str | None, timeout: float) -> ToolError:
    stderr = result.stderr.strip()
    if not result.timed_out and any(marker in stderr for marker in _DOCKER_DOWN):
        return ToolError(f"the Docker daemon is not reachable: {stderr.splitlines()[0]} — "
                         "fix: start Docker, or set DOCKER_HOST for the server's user")
    if container is not None and "No such" in stderr:
        return ToolError(f"no container {container!r} — list them with "
                         "docker_containers(all=True)")
    return command_error(result, "docker", timeout)


def _log_line(raw: str, stream: Literal["stdout", "stderr"]) -> ContainerLogLine:
    stamp, _, text = raw.partition(" ")
    if not stamp[:4].isdigit():  # no timestamp: keep the whole line
        return ContainerLogLine(time=None, stream=stream, text=raw[:4096])
    return ContainerLogLine(time=stamp, stream=stream, text=text[:4096])


def _time_key(line: ContainerLogLine) -> tuple[str, str]:
    """Docker's RFC 3339 stamps drop trailing zeros of the fraction: pad it to sort."""
    stamp = (line.time or "").rstrip("Z")
    seconds, _, fraction = stamp.partition(".")
    return seconds, fraction.ljust(9, "0")


def build(settings: InfrastructureAgentSettings) -> FastMCP:
    mcp = FastMCP("infrastructure", instructions=(
        "systemd units, Docker containers and an AWS summary. start/stop/restart change the "
        "host: check systemd_status and systemd_logs first."))
    timeout = settings.timeout

    async def systemctl(*args: str) -> CommandResult:
        binary = require_binary("systemctl", "systemd (systemctl)")
        result = await run_command([binary, *args], timeout=timeout)
        if result.timed_out or result.exit_code != 0:
            raise command_error(result, f"systemctl {args[0]}", timeout)
        return result

    async def docker(container: str | None, *args: str) -> CommandResult:
        binary = require_binary("docker", "the Docker CLI (docker.io or docker-ce-cli)")
        result = await run_command([binary, *args], timeout=timeout, max_output=4_000_000)
        if result.timed_out or result.exit_code != 0:
            raise _docker_error(result, container, timeout)
        return result

    async def status(unit: str) -> UnitStatus:
        result = await systemctl("show", "--no-pager",
                                 f"--property={','.join(_STATUS_PROPERTIES)}", "--", unit)
        return _parse_status(result.stdout)

    async def act(action: Literal["start", "stop", "restart"], unit: str) -> UnitAction:
        binary = require_binary("systemctl", "systemd (systemctl)")
        result = await run_command([binary, action, "--", unit], timeout=timeout)
        if result.timed_out or result.exit_code != 0:
            error = command_error(result, f"systemctl {action} {unit}", timeout)
            try:
                after = await status(unit)
            except ToolError:
                raise error from None
            raise ToolError(f"{error} — the unit is now {after.active_state}/"
                            f"{after.sub_state}; see systemd_logs for why")
        return UnitAction(unit=unit, action=action, status=await status(unit))

    @mcp.tool(annotations=READ_ONLY)
    async def systemd_status(unit: Unit) -> UnitStatus:
        """A systemd unit's state: load/active/sub state, main PID, start time, restarts."""
        return await status(unit)

    @mcp.tool(annotations=READ_ONLY)
    async def systemd_logs(unit: Unit, lines: Lines = 100) -> JournalResult:
        """The last journal entries of a systemd unit (journalctl -u), oldest first."""
        return await read_journal(unit=unit, since=None, priority=None, lines=lines,
                                  pattern=None, timeout=timeout, max_bytes=16_000_000)

    @mcp.tool(annotations=READ_ONLY)
    async def systemd_list_failed() -> list[FailedUnit]:
        """Units systemd reports as failed."""
        result = await systemctl("list-units", "--failed", "--all", "--no-legend", "--plain",
                                 "--no-pager")
        units = []
        for line in result.stdout.splitlines():
            parts = line.split(None, 4)
            if len(parts) >= 4:
                units.append(FailedUnit(unit=parts[0], load_state=parts[1],
                                        active_state=parts[2], sub_state=parts[3],
                                        description=parts[4] if len(parts) > 4 else ""))
        return units

    @mcp.tool(annotations=START_STOP)
    async def systemd_start(unit: Unit) -> UnitAction:
        """Start a systemd unit (no change when it is already running); returns its new
        state."""
        return await act("start", unit)

    @mcp.tool(annotations=START_STOP)
    async def systemd_stop(unit: Unit) -> UnitAction:
        """Stop a systemd unit; returns its new state."""
        return await act("stop", unit)

    @mcp.tool(annotations=RESTART)
    async def systemd_restart(unit: Unit) -> UnitAction:
        """Restart a systemd unit (interrupts its service); returns its new state."""
        return await act("restart", unit)

    @mcp.tool(annotations=READ_ONLY)
    async def docker_containers(all: bool = False) -> list[DockerContainer]:
        """Docker containers (running ones, or all with all=true)."""
        result = await docker(None, "ps", "--format", "{{json .}}", *(["--all"] if all else []))
        rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
        return [DockerContainer(
            id=r.get("ID", ""), names=r.get("Names", ""), image=r.get("Image", ""),
            state=r.get("State", ""), status=r.get("Status", ""), ports=r.get("Ports", ""),
            created=r.get("CreatedAt", ""), running_for=r.get("RunningFor", "")) for r in rows]

    @mcp.tool(annotations=READ_ONLY)
    async def docker_logs(container: Container, lines: Lines = 100) -> ContainerLogs:
        """A container's last log lines (its stdout and stderr, merged by time)."""
        result = await docker(container, "logs", "--tail", str(lines), "--timestamps", "--",
                              container)
        merged = sorted([_log_line(raw, "stdout") for raw in result.stdout.splitlines()]
                        + [_log_line(raw, "stderr") for raw in result.stderr.splitlines()],
                        key=_time_key)
        return ContainerLogs(container=container, lines=merged[-lines:],
                             truncated=result.truncated,
                             note="output cut at 4 MB" if result.truncated else None)

    @mcp.tool(annotations=READ_ONLY)
    async def docker_inspect_state(container: Container) -> ContainerState:
        """A container's state: running/paused/restarting, exit code, OOM kill, health,
        restart count, start and finish times."""
        result = await docker(container, "inspect", "--type", "container", "--format",
                              "{{json .}}", "--", container)
        info: dict[str, Any] = json.loads(result.stdout)
        state: dict[str, Any] = info.get("State") or {}
        return ContainerState(
            id=info.get("Id", ""), name=str(info.get("Name", "")).lstrip("/"),
            image=(info.get("Config") or {}).get("Image"), status=state.get("Status", ""),
            running=bool(state.get("Running")), paused=bool(state.get("Paused")),
            restarting=bool(state.get("Restarting")), oom_killed=bool(state.get("OOMKilled")),
            dead=bool(state.get("Dead")), pid=state.get("Pid") or None,
            exit_code=state.get("ExitCode"), error=state.get("Error") or None,
            started_at=state.get("StartedAt"), finished_at=state.get("FinishedAt"),
            health=(state.get("Health") or {}).get("Status"),
            restart_count=info.get("RestartCount"))

    @mcp.tool(annotations=AWS_READ_ONLY)
    async def aws_summary(region: Region | None = None) -> AwsSummary:
        """EC2 instances (id, Name tag, state, type) and CloudWatch alarms now in ALARM."""
        if not settings.aws:
            raise ToolError("AWS is disabled in config (agents: infrastructure: aws: false in "
                            "servers.yaml)")
        return await asyncio.to_thread(aws_summary_sync, region or settings.aws_region, timeout)

    return mcp
