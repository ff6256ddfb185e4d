"""The network agent: DNS, TCP, HTTP(S) and TLS checks. All read-only, all with timeouts."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import socket
import ssl
import time
from datetime import UTC, datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import AfterValidator, BaseModel, Field

from orchestrator_mcp.agents.commands import require_binary, run_command
from orchestrator_mcp.config.agents import NetworkAgentSettings

# Network checks reach outside this host: open world, but they change nothing.
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def check_host(host: str) -> str:
    """An IP address, or a hostname by RFC 1123 (letters, digits, hyphens; dots between)."""
    host = host.strip().rstrip(".")
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    if not host or len(host) > 253 or not all(_LABEL.match(p) for p in host.split(".")):
        raise ValueError(f"{host!r} is neither an IP address nor a valid hostname "
                         "(RFC 1123: labels of letters, digits and '-', dot-separated)")
    return host


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    check_host(parts.hostname)
    return url


Host = Annotated[str, AfterValidator(check_host), Field(max_length=253)]
Port = Annotated[int, Field(ge=1, le=65535)]
Url = Annotated[str, AfterValidator(check_url), Field(max_length=2048)]


class DnsAnswer(BaseModel):
    name: str
    record_type: str
    values: list[str]
    seconds: float


class TcpCheck(BaseModel):
    host: str
    port: int
    open: bool
    seconds: float
    error: str | None = None


class PingResult(BaseModel):
    host: str
    sent: int
    received: int
    loss_percent: float
    rtt_min_ms: float | None
    rtt_avg_ms: float | None
    rtt_max_ms: float | None
    output: str


class Hop(BaseModel):
    hop: int
    address: str | None = Field(description="None when the hop did not answer (* * *)")
    rtt_ms: list[float]


class TracerouteResult(BaseModel):
    host: str
    hops: list[Hop]
    reached: bool
    output: str


_PING_COUNTS = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received")
_PING_RTT = re.compile(r"= ([\d.]+)/([\d.]+)/([\d.]+)")
_HOP = re.compile(r"^\s*(\d+)\s+(.*)$")
_HOP_ADDRESS = re.compile(r"\(?([0-9a-fA-F:.]+[0-9a-fA-F])\)?\s+([\d.]+) ms")


def parse_ping(host: str, output: str) -> PingResult:
    counts = _PING_COUNTS.search(output)
    sent, received = (int(counts[1]), int(counts[2])) if counts else (0, 0)
    rtt = _PING_RTT.search(output)
    low, avg, high = (float(rtt[1]), float(rtt[2]), float(rtt[3])) if rtt else (None,) * 3
    loss = round(100 * (sent - received) / sent, 1) if sent else 100.0
    return PingResult(host=host, sent=sent, received=received, loss_percent=loss,
                      rtt_min_ms=low, rtt_avg_ms=avg, rtt_max_ms=high, output=output[-4000:])


def parse_traceroute(host: str, output: str) -> TracerouteResult:
    hops = []
    for line in output.splitlines()[1:]:
        match = _HOP.match(line)
        if not match:
            continue
        answers = _HOP_ADDRESS.findall(match[2])
        hops.append(Hop(hop=int(match[1]), address=answers[0][0] if answers else None,
                        rtt_ms=[float(ms) for _, ms in answers]))
    reached = bool(hops) and hops[-1].address is not None
    return TracerouteResult(host=host, hops=hops, reached=reached, output=output[-8000:])


class Certificate(BaseModel):
    subject: str
    issuer: str
    not_after: str
    days_left: float


class HttpCheck(BaseModel):
    url: str
    final_url: str
    status: int | None
    seconds: float
    redirects: list[str]
    error: str | None = None
    certificate: Certificate | None = None


def _certificate(host: str, port: int, timeout: float) -> Certificate:
    """The server's certificate as presented, even when it does not verify (self-signed)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        der = tls.getpeercert(binary_form=True)
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc
    return Certificate(subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
                       not_after=not_after.isoformat(),
                       days_left=round((not_after - datetime.now(UTC)).total_seconds() / 86400,
                                       2))


def _resolve(name: str, record_type: str, timeout: float) -> list[str]:
    if record_type in ("A", "AAAA"):
        family = socket.AF_INET if record_type == "A" else socket.AF_INET6
        try:
            infos = socket.getaddrinfo(name, None, family, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ToolError(f"{name}: {record_type} lookup failed: {exc.strerror}") from None
        return sorted({info[4][0] for info in infos})
    try:
        import dns.exception
        import dns.resolver
    except ImportError:
        raise ToolError(f"{record_type} lookups need the dnspython package; A and AAAA work "
                        "without it") from None
    resolver = dns.resolver.Resolver()
    resolver.lifetime = timeout
    try:
        return sorted(r.to_text() for r in resolver.resolve(name, record_type))
    except dns.exception.DNSException as exc:
        raise ToolError(f"{name}: {record_type} lookup failed: {exc}") from None


def build(settings: NetworkAgentSettings) -> FastMCP:
    mcp = FastMCP("network", instructions="DNS, TCP, HTTP(S) and TLS checks; read-only.")
    timeout = settings.timeout

    @mcp.tool(annotations=READ_ONLY)
    async def dns_lookup(
        name: Host, record_type: Literal["A", "AAAA", "MX", "TXT", "CNAME", "NS"] = "A"
    ) -> DnsAnswer:
        """Resolve a name (A/AAAA through the system resolver, others through DNS)."""
        started = time.perf_counter()
        values = await asyncio.wait_for(asyncio.to_thread(_resolve, name, record_type, timeout),
                                        timeout + 1)
        return DnsAnswer(name=name, record_type=record_type, values=values,
                         seconds=round(time.perf_counter() - started, 4))

    @mcp.tool(annotations=READ_ONLY)
    async def tcp_check(host: Host, port: Port) -> TcpCheck:
        """Can a TCP connection be opened, and how long does it take?"""
        started = time.perf_counter()
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            writer.close()
            await writer.wait_closed()
            return TcpCheck(host=host, port=port, open=True,
                            seconds=round(time.perf_counter() - started, 4))
        except (OSError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                reason = "timed out"
            else:
                reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
            return TcpCheck(host=host, port=port, open=False, error=reason,
                            seconds=round(time.perf_counter() - started, 4))

    @mcp.tool(annotations=READ_ONLY)
    async def tls_certificate(host: Host, port: Port = 443) -> Certificate:
        """The TLS certificate a server presents: subject, issuer, expiry, days left."""
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(_certificate, host, port, timeout), timeout + 1)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            raise ToolError(f"{host}:{port}: no TLS certificate: "
                            f"{getattr(exc, 'strerror', None) or exc or 'timed out'}") from None

    @mcp.tool(annotations=READ_ONLY)
    async def http_check(url: Url) -> HttpCheck:
        """GET a URL: status, latency, redirects followed, and the TLS certificate's expiry
        for https."""
        import httpx2

        started = time.perf_counter()
        redirects: list[str] = []
        try:
            async with httpx2.AsyncClient(timeout=timeout, follow_redirects=True,
                                          max_redirects=settings.max_redirects,
                                          verify=False) as http:
                response = await http.get(url)
            redirects = [str(r.url) for r in response.history]
            result = HttpCheck(url=url, final_url=str(response.url),
                               status=response.status_code, redirects=redirects,
                               seconds=round(time.perf_counter() - started, 4))
        except httpx2.HTTPError as exc:
            return HttpCheck(url=url, final_url=url, status=None, redirects=redirects,
                             error=f"{type(exc).__name__}: {exc}",
                             seconds=round(time.perf_counter() - started, 4))
        final = urlsplit(result.final_url)
        if final.scheme == "https" and final.hostname:
            try:
                result.certificate = await asyncio.to_thread(
                    _certificate, final.hostname, final.port or 443, timeout)
            except (OSError, ssl.SSLError):
                pass
        return result

    @mcp.tool(annotations=READ_ONLY)
    async def ping(host: Host, count: Annotated[int, Field(ge=1, le=20)] = settings.ping_count
                   ) -> PingResult:
        """ICMP echo: packets sent/received, loss and round-trip times (needs `ping`)."""
        binary = require_binary("ping", "the iputils-ping package")
        result = await run_command(
            [binary, "-n", "-c", str(count), "-W", str(max(1, round(timeout))), host],
            timeout=count * (timeout + 1) + 5)
        if result.timed_out:
            raise ToolError(f"ping {host} did not finish in time")
        if result.exit_code not in (0, 1):  # 1 = no reply, still a result
            raise ToolError(f"ping {host} failed: {(result.stderr or result.stdout).strip()}")
        return parse_ping(host, result.stdout)

    @mcp.tool(annotations=READ_ONLY)
    async def traceroute(
        host: Host,
        max_hops: Annotated[int, Field(ge=1, le=64)] = settings.traceroute_max_hops,
    ) -> TracerouteResult:
        """The route to a host, hop by hop (needs `traceroute`)."""
        binary = require_binary("traceroute", "the traceroute package")
        result = await run_command(
            [binary, "-n", "-q", "1", "-w", str(max(1, round(timeout))), "-m", str(max_hops),
             host], timeout=max_hops * (timeout + 1) + 5)
        if result.exit_code not in (0, None) and not result.stdout:
            raise ToolError(f"traceroute {host} failed: {result.stderr.strip()}")
        return parse_traceroute(host, result.stdout)

    return mcp
