"""The network agent: DNS, TCP, HTTP(S) and TLS checks, ping and traceroute. All read-only,
all with timeouts.

Every check that connects goes through the egress policy (`_egress`): the addresses the
target resolves to are checked first (loopback, link-local and cloud metadata refused unless
`agents.network.allow_cidrs` names them; `deny_cidrs` refuses more), on every redirect too,
and the connection goes to the checked address, never to a second lookup's answer.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import urljoin, urlsplit

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import AfterValidator, BaseModel, Field

from orchestrator_mcp.agents._egress import (
    Address,
    EgressPolicy,
    Refused,
    check_host,
    check_url,
    pinned_urls,
    server_name,
)
from orchestrator_mcp.agents.commands import require_binary, run_command
from orchestrator_mcp.agents.network_settings import NetworkAgentSettings

# Network checks reach outside this host: open world, but they change nothing.
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

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
    address: str | None = Field(default=None, description="the address connected to (tried)")


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
    final_url: str = Field(description="the last URL requested")
    status: int | None
    seconds: float
    redirects: list[str] = Field(description="the URLs that answered with a redirect")
    error: str | None = None
    certificate: Certificate | None = None
    address: str | None = Field(default=None, description="the address of the last request")


def _certificate(address: str, port: int, server_name: str | None,
                 timeout: float) -> Certificate:
    """The certificate a server presents at `address` (SNI `server_name`), even when it does
    not verify (self-signed)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection((address, port), timeout=timeout) as raw, \
            context.wrap_socket(raw, server_hostname=server_name) as tls:
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise ssl.SSLError("the server presented no certificate")
    return _parse_certificate(der)


def _parse_certificate(der: bytes) -> Certificate:
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc
    return Certificate(subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
                       not_after=not_after.isoformat(),
                       days_left=round((not_after - datetime.now(UTC)).total_seconds() / 86400,
                                       2))


def _peer_certificate(response: Any) -> Certificate | None:
    """The certificate of the TLS connection an httpx2 response came over, if any."""
    stream = response.extensions.get("network_stream")
    ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    try:
        return _parse_certificate(der) if der else None
    except ValueError:
        return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"name resolution failed: {exc.strerror}"
    if isinstance(exc, OSError):
        return os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class _Hop:
    url: str
    status: int
    location: str | None
    certificate: Certificate | None
    address: str


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
    mcp = FastMCP("network", instructions=(
        "DNS, TCP, HTTP(S) and TLS checks, ping and traceroute; read-only. Loopback, "
        "link-local and cloud metadata addresses are refused unless servers.yaml allows them "
        "(agents.network.allow_cidrs)."))
    timeout = settings.timeout
    policy = EgressPolicy(settings.allow_cidrs, settings.deny_cidrs)

    async def allowed(host: str, port: int | None = None) -> list[Address]:
        """The checked addresses of `host`; Refused by the policy, a ToolError when the name
        does not resolve (for tools without a result shape for that)."""
        try:
            return await policy.resolve(host, port, timeout)
        except Refused:
            raise
        except (OSError, TimeoutError) as exc:
            raise ToolError(f"{host}: {_reason(exc)}") from None

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

        def answer(opened: bool, address: Address | None, error: str | None) -> TcpCheck:
            return TcpCheck(host=host, port=port, open=opened, error=error,
                            address=str(address) if address is not None else None,
                            seconds=round(time.perf_counter() - started, 4))

        address: Address | None = None
        reason = "no address"
        try:
            async with asyncio.timeout(timeout):
                for address in await policy.resolve(host, port, timeout):
                    try:
                        _, writer = await asyncio.open_connection(str(address), port)
                    except OSError as exc:
                        reason = _reason(exc)
                        continue
                    writer.close()
                    await writer.wait_closed()
                    return answer(True, address, None)
        except (OSError, TimeoutError) as exc:
            reason = _reason(exc)
        return answer(False, address, reason)

    @mcp.tool(annotations=READ_ONLY)
    async def tls_certificate(host: Host, port: Port = 443) -> Certificate:
        """The TLS certificate a server presents: subject, issuer, expiry, days left."""
        errors = []
        for address in await allowed(host, port):
            try:
                return await asyncio.wait_for(asyncio.to_thread(
                    _certificate, str(address), port, server_name(host), timeout), timeout + 1)
            except (OSError, ssl.SSLError, TimeoutError) as exc:
                errors.append(f"{address}: {getattr(exc, 'strerror', None) or exc or 'timed out'}")
        raise ToolError(f"{host}:{port}: no TLS certificate: {'; '.join(errors)}")

    async def fetch(http: Any, url: str) -> _Hop:
        """One GET of `url`, at a checked address, without following redirects."""
        import httpx2

        parts = urlsplit(url)
        https = parts.scheme == "https"
        port = parts.port or (443 if https else 80)
        last_error: Exception | None = None
        for target in pinned_urls(url, await policy.resolve(parts.hostname or "", port,
                                                            timeout)):
            extensions = {"sni_hostname": target.sni} if target.sni else {}
            try:
                async with http.stream("GET", target.url, headers={"Host": target.host_header},
                                       extensions=extensions) as response:
                    return _Hop(url=url, status=response.status_code,
                                location=response.headers.get("location"),
                                certificate=_peer_certificate(response) if https else None,
                                address=str(target.address))
            except httpx2.ConnectError as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    @mcp.tool(annotations=READ_ONLY)
    async def http_check(url: Url) -> HttpCheck:
        """GET a URL: status, latency, redirects followed (each checked like the URL), and the
        TLS certificate's expiry for https. The body is not read."""
        import httpx2

        started = time.perf_counter()
        hops: list[_Hop] = []

        def answer(error: str | None = None) -> HttpCheck:
            last = hops[-1] if hops else None
            return HttpCheck(url=url, final_url=last.url if last else url,
                             status=last.status if last else None,
                             redirects=[hop.url for hop in hops[:-1]], error=error,
                             certificate=last.certificate if last else None,
                             address=last.address if last else None,
                             seconds=round(time.perf_counter() - started, 4))

        current = url
        # trust_env=False: no proxy from the environment, so the request provably goes to
        # the checked address.
        async with httpx2.AsyncClient(timeout=timeout, follow_redirects=False, verify=False,
                                      trust_env=False) as http:
            try:
                async with asyncio.timeout(timeout * (settings.max_redirects + 2)):
                    while True:
                        try:
                            hops.append(await fetch(http, current))
                        except Refused as exc:
                            if not hops:
                                raise
                            return answer(f"not following the redirect to {current}: {exc}")
                        location = hops[-1].location
                        if hops[-1].status not in REDIRECT_STATUSES or not location:
                            return answer()
                        if len(hops) > settings.max_redirects:
                            return answer(f"more than {settings.max_redirects} redirects "
                                          "(agents.network.max_redirects)")
                        current = urljoin(current, location)
                        try:
                            check_url(current)
                        except ValueError as exc:
                            return answer(f"not following the redirect to {current!r}: {exc}")
            except (httpx2.HTTPError, OSError, TimeoutError) as exc:
                return answer(_reason(exc))

    @mcp.tool(annotations=READ_ONLY)
    async def ping(host: Host, count: Annotated[int, Field(ge=1, le=20)] = settings.ping_count
                   ) -> PingResult:
        """ICMP echo: packets sent/received, loss and round-trip times (needs `ping`)."""
        address = str((await allowed(host))[0])
        binary = require_binary("ping", "the iputils-ping package")
        result = await run_command(
            [binary, "-n", "-c", str(count), "-W", str(max(1, round(timeout))), address],
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
        address = str((await allowed(host))[0])
        binary = require_binary("traceroute", "the traceroute package")
        result = await run_command(
            [binary, "-n", "-q", "1", "-w", str(max(1, round(timeout))), "-m", str(max_hops),
             address], timeout=max_hops * (timeout + 1) + 5)
        if result.exit_code not in (0, None) and not result.stdout:
            raise ToolError(f"traceroute {host} failed: {result.stderr.strip()}")
        return parse_traceroute(host, result.stdout)

    return mcp
