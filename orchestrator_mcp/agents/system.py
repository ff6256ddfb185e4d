"""The system agent: this host's CPU, memory, disks, processes, network, from psutil.

Every tool is read-only; psutil calls block briefly, so they run in a thread.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Literal

import psutil
from fastmcp import FastMCP
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from orchestrator_mcp.agents.system_settings import SystemAgentSettings

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)


class CpuLoad(BaseModel):
    cpu_percent: float = Field(description="all cores, sampled over 0.2 s")
    per_cpu_percent: list[float]
    cores_logical: int
    load_1m: float
    load_5m: float
    load_15m: float


class Memory(BaseModel):
    total_bytes: int
    available_bytes: int
    used_percent: float
    swap_total_bytes: int
    swap_used_bytes: int
    swap_percent: float


class DiskUsage(BaseModel):
    mountpoint: str
    device: str
    fstype: str
    total_bytes: int
    used_bytes: int
    free_bytes: int
    used_percent: float


class ProcessInfo(BaseModel):
    pid: int
    name: str
    user: str | None
    cpu_percent: float
    memory_bytes: int
    memory_percent: float
    status: str
    command: str


class Interface(BaseModel):
    name: str
    up: bool
    addresses: list[str]
    bytes_sent: int
    bytes_received: int
    errors_in: int
    errors_out: int


class ListeningPort(BaseModel):
    address: str
    port: int
    protocol: Literal["tcp", "udp"]
    pid: int | None
    process: str | None


class Uptime(BaseModel):
    boot_time: float
    uptime_seconds: float
    users: int


def _cpu() -> CpuLoad:
    per_cpu = psutil.cpu_percent(interval=0.2, percpu=True)
    load = psutil.getloadavg()
    return CpuLoad(cpu_percent=round(sum(per_cpu) / len(per_cpu), 1), per_cpu_percent=per_cpu,
                   cores_logical=psutil.cpu_count() or len(per_cpu), load_1m=load[0],
                   load_5m=load[1], load_15m=load[2])


def _memory() -> Memory:
    vm, swap = psutil.virtual_memory(), psutil.swap_memory()
    return Memory(total_bytes=vm.total, available_bytes=vm.available, used_percent=vm.percent,
                  swap_total_bytes=swap.total, swap_used_bytes=swap.used,
                  swap_percent=swap.percent)


def _disks() -> list[DiskUsage]:
    disks = []
    for part in psutil.disk_partitions(all=False):
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except (PermissionError, OSError):
            continue
        disks.append(DiskUsage(mountpoint=part.mountpoint, device=part.device,
                               fstype=part.fstype, total_bytes=usage.total,
                               used_bytes=usage.used, free_bytes=usage.free,
                               used_percent=usage.percent))
    return disks


def _processes(limit: int, sort_by: str) -> list[ProcessInfo]:
    attrs = ["pid", "name", "username", "memory_info", "memory_percent", "status", "cmdline"]
    procs = list(psutil.process_iter(attrs))
    for proc in procs:  # first cpu_percent call primes the counter
        try:
            proc.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(0.2)
    rows = []
    for proc in procs:
        try:
            info = proc.info
            rows.append(ProcessInfo(
                pid=info["pid"], name=info["name"] or "", user=info["username"],
                cpu_percent=proc.cpu_percent(None),
                memory_bytes=info["memory_info"].rss if info["memory_info"] else 0,
                memory_percent=round(info["memory_percent"] or 0.0, 2),
                status=info["status"] or "", command=" ".join(info["cmdline"] or [])[:300]))
        except psutil.Error:
            continue
    key = (lambda p: p.cpu_percent) if sort_by == "cpu" else (lambda p: p.memory_bytes)
    return sorted(rows, key=key, reverse=True)[:limit]


def _interfaces() -> list[Interface]:
    stats, addrs, io = psutil.net_if_stats(), psutil.net_if_addrs(), psutil.net_io_counters(
        pernic=True)
    result = []
    for name, stat in sorted(stats.items()):
        counters = io.get(name)
        result.append(Interface(
            name=name, up=stat.isup,
            addresses=[a.address for a in addrs.get(name, []) if a.family.name in (
                "AF_INET", "AF_INET6")],
            bytes_sent=counters.bytes_sent if counters else 0,
            bytes_received=counters.bytes_recv if counters else 0,
            errors_in=counters.errin if counters else 0,
            errors_out=counters.errout if counters else 0))
    return result


def _listening() -> list[ListeningPort]:
    ports = []
    for conn in psutil.net_connections(kind="inet"):
        listening = conn.status == psutil.CONN_LISTEN or (conn.type.name == "SOCK_DGRAM"
                                                         and not conn.raddr)
        if not listening or not conn.laddr:
            continue
        name = None
        if conn.pid:
            try:
                name = psutil.Process(conn.pid).name()
            except psutil.Error:
                name = None
        ports.append(ListeningPort(address=conn.laddr.ip, port=conn.laddr.port,
                                   protocol="tcp" if conn.type.name == "SOCK_STREAM" else "udp",
                                   pid=conn.pid, process=name))
    return sorted(ports, key=lambda p: (p.protocol, p.port))


def build(settings: SystemAgentSettings) -> FastMCP:
    mcp = FastMCP("system", instructions="Read-only facts about this host (psutil).")

    @mcp.tool(annotations=READ_ONLY)
    async def cpu() -> CpuLoad:
        """CPU use (overall and per core) and load averages."""
        return await asyncio.to_thread(_cpu)

    @mcp.tool(annotations=READ_ONLY)
    async def memory() -> Memory:
        """Memory and swap use."""
        return await asyncio.to_thread(_memory)

    @mcp.tool(annotations=READ_ONLY)
    async def disk_usage() -> list[DiskUsage]:
        """Space used and free on every mounted filesystem."""
        return await asyncio.to_thread(_disks)

    @mcp.tool(annotations=READ_ONLY)
    async def top_processes(
        sort_by: Literal["cpu", "memory"] = "cpu",
        limit: Annotated[int, Field(ge=1, le=200)] = settings.top_processes,
    ) -> list[ProcessInfo]:
        """The processes using the most CPU or memory."""
        return await asyncio.to_thread(_processes, limit, sort_by)

    @mcp.tool(annotations=READ_ONLY)
    async def uptime() -> Uptime:
        """When the host booted, and how many users are logged in."""
        boot = psutil.boot_time()
        return Uptime(boot_time=boot, uptime_seconds=round(time.time() - boot, 1),
                      users=len(psutil.users()))

    @mcp.tool(annotations=READ_ONLY)
    async def interfaces() -> list[Interface]:
        """Network interfaces: state, addresses, traffic and error counters."""
        return await asyncio.to_thread(_interfaces)

    @mcp.tool(annotations=READ_ONLY)
    async def listening_ports() -> list[ListeningPort]:
        """TCP and UDP ports this host listens on, with their process when visible."""
        return await asyncio.to_thread(_listening)

    return mcp
