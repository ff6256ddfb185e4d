"""Where the network agent may connect: its SSRF policy.

The agent's checks are steered by a planner that reads untrusted text (alerts, logs, tool
results), so a URL or host is not trusted to be harmless. The decision is taken on the
address the name RESOLVES to, for every address it resolves to, on every redirect, and the
connection then goes to that checked address (the name is sent as Host header and TLS SNI),
so a DNS answer that changes between check and connect (rebinding) cannot swap it.

Rules, most specific range first (like a routing table); at equal prefix length
`deny_cidrs` beats `allow_cidrs`, which beats the built-in rules:

    built-in, refused    cloud-metadata 169.254.169.254/32, fd00:ec2::254/128, ...
                         link-local     169.254.0.0/16, fe80::/10
                         loopback       127.0.0.0/8, ::1/128
                         unspecified    0.0.0.0/8, ::/128   (0.0.0.0 reaches this host)
                         multicast      224.0.0.0/4, ff00::/8
                         reserved       240.0.0.0/4         (and 255.255.255.255)
    agents.network.allow_cidrs          reachable although a built-in rule refuses them
    agents.network.deny_cidrs           refused
    anything else (public, private)     reachable: checking internal services is the job

So `allow_cidrs: [127.0.0.0/8]` opens loopback, `allow_cidrs: [0.0.0.0/0]` opens nothing a
built-in rule names (those ranges are more specific), and `deny_cidrs: [0.0.0.0/0, ::/0]`
with a few `allow_cidrs` makes an allow-list. IPv6 forms that carry an IPv4 address
(::ffff:127.0.0.1, 6to4, Teredo, NAT64) are judged on that address too. Hosts are taken
only as a name or a canonical IP: 2130706433, 0x7f.1, 0177.0.0.1 or 127.1 are refused,
as are URLs with user:password@.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastmcp.exceptions import ToolError
from fastmcp.server.auth.ssrf import format_ip_for_url

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "agents.network"
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_NUMERIC_LABEL = re.compile(r"^(?:0[xX][0-9A-Fa-f]*|[0-9]+)$")

# (rule, what it is, ranges): refused unless allow_cidrs names the address.
BUILTIN_REFUSED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("cloud-metadata", "a cloud metadata address, where instance credentials live", (
        "169.254.169.254/32",  # AWS, GCP, Azure, OCI, OpenStack, DigitalOcean, Hetzner
        "169.254.170.2/32",  # AWS ECS task metadata and credentials
        "169.254.170.23/32",  # AWS EKS pod identity agent
        "fd00:ec2::254/128", "fd00:ec2::23/128",  # AWS over IPv6
        "100.100.100.200/32",  # Alibaba Cloud
        "168.63.129.16/32",  # Azure WireServer / host agent
        "192.0.0.192/32",  # Oracle Cloud (classic)
    )),
    ("link-local", "a link-local address", ("169.254.0.0/16", "fe80::/10")),
    ("loopback", "a loopback address, this host itself", ("127.0.0.0/8", "::1/128")),
    ("unspecified", "an unspecified address, which reaches this host",
     ("0.0.0.0/8", "::/128")),
    ("multicast", "a multicast address", ("224.0.0.0/4", "ff00::/8")),
    ("reserved", "a reserved or broadcast address", ("240.0.0.0/4",)),
)
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


@dataclass(frozen=True)
class _Rule:
    network: Network
    allow: bool
    source: int  # at equal prefix length the higher wins: 0 built-in, 1 allow, 2 deny
    name: str
    what: str = ""


class Refused(ToolError):
    """A check the policy does not allow; the message names the rule and how to allow it."""


def check_host(host: str) -> str:
    """An IP address in canonical form, or a hostname by RFC 1123 (letters, digits, hyphens;
    dots between) whose last label is not a number (that would be an IPv4 address in a
    non-canonical form, which resolvers read in surprising ways)."""
    host = host.strip().rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    labels = host.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        try:
            meaning = f" (read as {socket.inet_ntoa(socket.inet_aton(host))})"
        except OSError:
            meaning = ""
        raise ValueError(f"{host!r} looks like an IPv4 address in a non-canonical form "
                         f"(decimal, octal, hex, shortened or with leading zeros){meaning} — "
                         "write it as four decimal numbers, e.g. 192.0.2.10")
    if not host or len(host) > 253 or not all(_LABEL.match(p) for p in labels):
        raise ValueError(f"{host!r} is neither an IP address nor a valid hostname "
                         "(RFC 1123: labels of letters, digits and '-', dot-separated)")
    return host


def check_url(url: str) -> str:
    """An http(s) URL with a checked host and no credentials."""
    if any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url) or "\\" in url:
        raise ValueError(f"{url!r} contains a space, a control character or a backslash — "
                         "percent-encode them")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    if "@" in parts.netloc:
        raise ValueError("URLs with credentials (user:password@host) are refused: the check "
                         "would send them to whatever the host resolves to — remove the "
                         "'user:password@' part")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"{url!r}: {exc}") from None
    check_host(parts.hostname)
    return url


def _embedded_ipv4(address: ipaddress.IPv6Address) -> set[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address carries (mapped, compatible, 6to4, Teredo, NAT64)."""
    found: set[ipaddress.IPv4Address] = set()
    if address.ipv4_mapped:
        found.add(address.ipv4_mapped)
    if address.sixtofour:
        found.add(address.sixtofour)
    if address.teredo:
        found.update(address.teredo)
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if any(address in prefix for prefix in _NAT64) or (
            int(address) >> 32 == 0 and int(address) > 1):  # ::a.b.c.d (IPv4-compatible)
        found.add(low32)
    return found


class EgressPolicy:
    """Decides, per resolved address, whether the network agent may connect to it."""

    def __init__(self, allow_cidrs: list[str], deny_cidrs: list[str]) -> None:
        rules = [_Rule(ipaddress.ip_network(cidr), False, 0, name, what)
                 for name, what, cidrs in BUILTIN_REFUSED for cidr in cidrs]
        rules += [_Rule(ipaddress.ip_network(c), True, 1, "allow_cidrs") for c in allow_cidrs]
        rules += [_Rule(ipaddress.ip_network(c), False, 2, "deny_cidrs") for c in deny_cidrs]
        self._rules = rules

    def _deciding(self, address: Address) -> _Rule | None:
        matching = [r for r in self._rules
                    if r.network.version == address.version and address in r.network]
        return max(matching, key=lambda r: (r.network.prefixlen, r.source), default=None)

    def refusal(self, address: Address) -> str | None:
        """Why `address` is refused (rule and how to allow it), or None when allowed."""
        if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
            address = ipaddress.IPv6Address(str(address).split("%")[0])
        candidates: list[Address] = [address]
        if isinstance(address, ipaddress.IPv6Address):
            candidates += sorted(_embedded_ipv4(address))
        for candidate in candidates:
            rule = self._deciding(candidate)
            if rule is None or rule.allow:
                continue
            carried = f" (carried in {address})" if candidate != address else ""
            single = ipaddress.ip_network(candidate)
            if rule.name == "deny_cidrs":
                return (f"{candidate}{carried} is in {SETTING}.deny_cidrs ({rule.network}) — "
                        f"to allow it, remove that entry or add {single} to "
                        f"{SETTING}.allow_cidrs in servers.yaml")
            return (f"{candidate}{carried} is {rule.what} (built-in rule '{rule.name}', "
                    f"{rule.network}) — to allow it, add {single}"
                    + (f" or {rule.network}" if rule.network != single else "")
                    + f" to {SETTING}.allow_cidrs in servers.yaml")
        return None

    async def resolve(self, host: str, port: int | None, timeout: float) -> list[Address]:
        """Every address `host` resolves to, all of them allowed, in resolver order.

        Raises Refused when any is refused (one name answering with a public and a private
        address is how rebinding starts), OSError/TimeoutError when resolution fails."""
        addresses = await _addresses(host, port, timeout)
        for address in addresses:
            why = self.refusal(address)
            if why:
                target = f"{host}:{port}" if port else host
                via = "" if _is_address(host) else f"{host} resolves to {address}; "
                raise Refused(f"refused to connect to {target}: {via}{why}")
        return addresses


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


async def _addresses(host: str, port: int | None, timeout: float) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM),
                                   timeout)
    addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    return addresses


@dataclass(frozen=True)
class PinnedUrl:
    """One request of an http check: the URL to connect to (an IP literal), and the name to
    send as Host header and TLS SNI."""

    url: str
    host_header: str
    sni: str | None
    address: Address


def server_name(host: str) -> str | None:
    """What to send as TLS SNI for `host`: the name, or nothing for an IP address."""
    return None if _is_address(host) else host


def pinned_urls(url: str, addresses: list[Address]) -> list[PinnedUrl]:
    """`url` rewritten once per checked address: the connection goes to the address, the
    request still names the host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    default = 443 if parts.scheme == "https" else 80
    port = parts.port or default
    named = format_ip_for_url(host)
    host_header = named if port == default else f"{named}:{port}"
    sni = server_name(host)
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    return [PinnedUrl(f"{parts.scheme}://{format_ip_for_url(str(address))}:{port}{target}",
                      host_header, sni, address) for address in addresses]
