"""The built-in agents against hostile input (issue 12, items 3, 7 and 9), through their real
FastMCP servers and a real client: catastrophic regular expressions, SSRF to loopback, cloud
metadata and non-canonical addresses (with a real HTTP server on 127.0.0.1 that redirects),
DNS rebinding, and diffs that point outside the roots. Time bounds here are loose: they catch
a blow-up (minutes), not a slowdown."""

from __future__ import annotations

import asyncio
import datetime
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastmcp import FastMCP

from orchestrator_mcp.agents import code_review, logs, network
from orchestrator_mcp.agents.code_review_settings import CodeReviewAgentSettings
from orchestrator_mcp.agents.logs_settings import LogsAgentSettings
from orchestrator_mcp.agents.network_settings import NetworkAgentSettings
from orchestrator_mcp.config.agents import AgentsSettings
from tests.mcp_calls import call, data, error


async def with_heartbeat(work: Awaitable[Any]) -> tuple[Any, float]:
    """`work`'s result and the longest the event loop went without running a 10 ms tick."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def beat() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(beat())
    try:
        result = await work
    finally:
        done.set()
        await ticker
    return result, max(gaps, default=0.0)


# ---- item 3: user regexes run on RE2 -----------------------------------------------------

@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    return folder


@pytest.mark.parametrize("pattern", ["(a+)+$", "(x+x+)+y", "(a|aa)*b", "(.*a){20}$"])
async def test_catastrophic_patterns_finish_and_keep_the_loop_running(root: Path,
                                                                      pattern: str) -> None:
    # The case: 12 short lines; Python's re took 34 s on one of these.
    (root / "app.log").write_text(("a" * 40 + "!\n") * 12)
    server = logs.build(LogsAgentSettings(roots=[root], timeout=5))
    started = time.monotonic()
    result, gap = await with_heartbeat(call(server, "grep", path="app.log", pattern=pattern))
    assert time.monotonic() - started < 5
    assert gap < 1.0, f"the event loop stalled for {gap:.1f} s"
    found = data(result)
    assert found["total_matches"] == 0 and found["truncated"] is False


async def test_the_timeout_holds_for_a_slow_pattern(root: Path) -> None:
    # ~0.1 s per 4 KiB line on RE2 (linear, but a large program): 600 lines would take
    # about a minute; the scan must stop at the agent's 1 s timeout.
    (root / "wide.log").write_text(("a" * 4000 + "\n") * 600)
    server = logs.build(LogsAgentSettings(roots=[root], timeout=1))
    started = time.monotonic()
    result, gap = await with_heartbeat(
        call(server, "grep", path="wide.log", pattern="((.*a){30}){30}b"))
    assert time.monotonic() - started < 5
    assert gap < 1.0, f"the event loop stalled for {gap:.1f} s"
    found = data(result)
    assert found["truncated"] is True and "timeout" in found["note"]


@pytest.mark.parametrize(("pattern", "expected"), [
    (r"(error)\1", "backreferences (\\1, \\2, ...) are not supported"),
    (r"(?P<w>\w+) (?P=w)", "named backreferences (?P=name) are not supported"),
    ("disk(?=full)", "'foo(?=bar)' becomes 'foobar'"),
    ("(?<!no )error", "lookbehind"),
    ("(?>a+)b", "RE2 never backtracks"),
    ("a++", "RE2 never backtracks — write x+"),
    (r"end\Z", "use \\z"),
    ("x{5000}", "repetition count is over 1000"),
])
async def test_unsupported_syntax_says_what_to_write_instead(root: Path, pattern: str,
                                                            expected: str) -> None:
    (root / "app.log").write_text("x\n")
    server = logs.build(LogsAgentSettings(roots=[root]))
    message = error(await call(server, "grep", path="app.log", pattern=pattern))
    assert message.startswith(f"invalid regular expression {pattern!r}")
    assert expected in message and "RE2" in message
    # The journal's `grep` goes through the same compiler, before journalctl runs.
    assert expected in error(await call(server, "journal", grep=pattern))


async def test_error_summary_of_hostile_lines_is_bounded(root: Path) -> None:
    hostile = ["ERROR " + "0:" * 2000, "ERROR " + "1a" * 2000, "ERROR " + "a" * 4000 + "!",
               "FATAL " + "2026-01-01 " * 360, "ERROR " + "1.1." * 1000, "ERROR " + "0x" * 2000]
    (root / "bad.log").write_text("\n".join(hostile * 100) + "\n")
    server = logs.build(LogsAgentSettings(roots=[root], timeout=5))
    started = time.monotonic()
    summary = data(await call(server, "error_summary", path="bad.log"))
    assert time.monotonic() - started < 10
    assert summary["counts"]["error"] + summary["counts"]["fatal"] == summary["lines_analysed"]


# ---- item 7: the network agent's SSRF policy ---------------------------------------------

class _Recorder(BaseHTTPRequestHandler):
    """GET /to/<url> answers 302 to http://<url>; anything else 200. Records every request."""

    seen: list[tuple[str, str | None]]

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append((self.path, self.headers.get("Host")))
        if self.path.startswith("/to/"):
            self.send_response(302)
            self.send_header("Location", "http://" + self.path.removeprefix("/to/"))
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()


@pytest.fixture
def web() -> Iterator[tuple[int, list[tuple[str, str | None]]]]:
    seen: list[tuple[str, str | None]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def network_agent(**settings: Any) -> FastMCP:
    """The network agent as servers.yaml would configure it (validated like the file)."""
    return network.build(AgentsSettings.model_validate({"network": settings}).network)


async def test_loopback_is_refused_by_default_and_nothing_is_sent(web: Any) -> None:
    port, seen = web
    agent = network_agent()
    for tool, arguments in (("http_check", {"url": f"http://127.0.0.1:{port}/"}),
                            ("http_check", {"url": f"http://localhost:{port}/"}),
                            ("tcp_check", {"host": "127.0.0.1", "port": port}),
                            ("tcp_check", {"host": "localhost", "port": port}),
                            ("tls_certificate", {"host": "127.0.0.1", "port": port})):
        message = error(await call(agent, tool, **arguments))
        assert "built-in rule 'loopback'" in message, message
        assert "agents.network.allow_cidrs" in message and "127.0.0.0/8" in message
    assert seen == []


@pytest.mark.parametrize(("url", "rule"), [
    ("http://169.254.169.254/latest/meta-data/", "built-in rule 'cloud-metadata'"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "built-in rule 'cloud-metadata'"),
    ("http://100.100.100.200/latest/meta-data/", "built-in rule 'cloud-metadata'"),
    ("http://[::ffff:169.254.169.254]/", "built-in rule 'cloud-metadata'"),
    ("http://[64:ff9b::a9fe:a9fe]/", "built-in rule 'cloud-metadata'"),  # NAT64
    ("http://[2002:a9fe:a9fe::1]/", "built-in rule 'cloud-metadata'"),  # 6to4
    ("http://169.254.10.10/", "built-in rule 'link-local'"),
    ("http://[fe80::1]/", "built-in rule 'link-local'"),
    ("http://[::1]:{port}/", "built-in rule 'loopback'"),
    ("http://[::ffff:127.0.0.1]:{port}/", "built-in rule 'loopback'"),
    ("http://0.0.0.0:{port}/", "built-in rule 'unspecified'"),
    ("http://2130706433:{port}/", "non-canonical form"),  # 127.0.0.1 in decimal
    ("http://0x7f000001:{port}/", "non-canonical form"),
    ("http://0177.0.0.1:{port}/", "non-canonical form"),
    ("http://127.1:{port}/", "non-canonical form"),
    ("http://0x7f.0.0.1:{port}/", "non-canonical form"),
    ("http://user:pw@127.0.0.1:{port}/", "credentials (user:password@host) are refused"),
    ("http://127.0.0.1:{port}@169.254.169.254/", "credentials (user:password@host) are"),
    ("http://evil.example\\@127.0.0.1:{port}/", "backslash"),
])
async def test_ssrf_targets_are_refused_before_connecting(web: Any, url: str,
                                                          rule: str) -> None:
    port, seen = web
    message = error(await call(network_agent(), "http_check", url=url.format(port=port)))
    assert rule in message, message
    assert seen == []


@pytest.mark.parametrize(("host", "rule"), [
    ("169.254.169.254", "cloud-metadata"), ("2130706433", "non-canonical form"),
    ("::ffff:127.0.0.1", "loopback"), ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"),
])
async def test_tcp_tls_ping_and_traceroute_use_the_same_policy(host: str, rule: str) -> None:
    agent = network_agent()
    for tool, arguments in (("tcp_check", {"port": 80}), ("tls_certificate", {"port": 443}),
                            ("ping", {"count": 1}), ("traceroute", {"max_hops": 1})):
        message = error(await call(agent, tool, host=host, **arguments))
        assert rule in message, f"{tool}: {message}"


async def test_each_redirect_is_checked(web: Any) -> None:
    port, seen = web
    agent = network_agent(allow_cidrs=["127.0.0.1/32"])  # this one address only
    cases = {
        "169.254.169.254/latest/meta-data/": "built-in rule 'cloud-metadata'",
        f"2130706433:{port}/": "non-canonical form",
        f"127.0.0.2:{port}/": "built-in rule 'loopback'",  # outside the /32 allowed
        f"user:pw@127.0.0.1:{port}/": "credentials",
        f"[::ffff:169.254.169.254]:{port}/": "built-in rule 'cloud-metadata'",
    }
    for target, rule in cases.items():
        checked = data(await call(agent, "http_check", url=f"http://127.0.0.1:{port}/to/{target}"))
        assert checked["status"] == 302 and checked["error"], checked
        assert checked["error"].startswith("not following the redirect to") and rule in \
            checked["error"], checked["error"]
        assert checked["final_url"] == f"http://127.0.0.1:{port}/to/{target}"
    assert all(path.startswith("/to/") for path, _ in seen)  # no redirect was followed
    followed = data(await call(agent, "http_check",
                               url=f"http://127.0.0.1:{port}/to/127.0.0.1:{port}/fine"))
    assert followed["status"] == 200 and followed["final_url"].endswith("/fine")


async def test_allow_and_deny_cidrs_most_specific_wins(web: Any) -> None:
    port, seen = web
    url = f"http://127.0.0.1:{port}/"
    assert data(await call(network_agent(allow_cidrs=["127.0.0.0/8"]), "http_check",
                           url=url))["status"] == 200
    wide = error(await call(network_agent(allow_cidrs=["0.0.0.0/0"]), "http_check", url=url))
    assert "built-in rule 'loopback'" in wide  # a wider range does not lift a built-in one
    denied = error(await call(network_agent(allow_cidrs=["127.0.0.0/8"],
                                            deny_cidrs=["127.0.0.1/32"]), "http_check", url=url))
    assert "agents.network.deny_cidrs (127.0.0.1/32)" in denied
    tie = error(await call(network_agent(allow_cidrs=["127.0.0.1/32"],
                                         deny_cidrs=["127.0.0.1/32"]), "tcp_check",
                           host="127.0.0.1", port=port))
    assert "deny_cidrs" in tie
    allowlist = network_agent(deny_cidrs=["0.0.0.0/0", "::/0"], allow_cidrs=["127.0.0.1/32"])
    assert data(await call(allowlist, "tcp_check", host="127.0.0.1", port=port))["open"]
    assert "deny_cidrs (0.0.0.0/0)" in error(await call(allowlist, "tcp_check",
                                                       host="192.0.2.1", port=80))
    assert len(seen) == 1


def test_bad_cidrs_in_config_are_explained() -> None:
    with pytest.raises(ValueError, match=r"has host bits set — write 10\.0\.0\.0/8"):
        NetworkAgentSettings(deny_cidrs=["10.0.0.1/8"])
    with pytest.raises(ValueError, match="is not an address range"):
        NetworkAgentSettings(allow_cidrs=["localhost"])


@pytest.fixture
def rebinding_dns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`rebind.test` answers 127.0.0.1 once, then the metadata address: what an attacker's DNS
    server with a zero TTL does. Only the resolver is replaced; connections are real."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return real(host, port, *args, **kwargs)
        asked.append(host)
        address = "127.0.0.1" if len(asked) == 1 else "169.254.169.254"
        return real(address, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


async def test_the_checked_address_is_the_one_connected_to(web: Any,
                                                           rebinding_dns: list[str]) -> None:
    port, seen = web
    agent = network_agent(allow_cidrs=["127.0.0.1/32"])
    checked = data(await call(agent, "http_check", url=f"http://rebind.test:{port}/x"))
    assert checked["status"] == 200 and checked["address"] == "127.0.0.1"
    assert seen == [("/x", f"rebind.test:{port}")]  # the name went as the Host header
    # The next check resolves anew, gets the metadata address, and is refused for it.
    assert "built-in rule 'cloud-metadata'" in error(
        await call(agent, "tcp_check", host="rebind.test", port=port))
    assert rebinding_dns == ["rebind.test", "rebind.test"]


async def test_tls_sni_carries_the_name_at_the_pinned_address(
        tmp_path: Path, rebinding_dns: list[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rebind.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    context.sni_callback = lambda _sock, server_name, _ctx: names.append(server_name)
    seen: list[tuple[str, str | None]] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Recorder,), {"seen": seen}))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        checked = data(await call(network_agent(allow_cidrs=["127.0.0.1/32"]), "http_check",
                                  url=f"https://rebind.test:{port}/"))
    finally:
        server.shutdown()
        server.server_close()
    assert checked["status"] == 200 and checked["address"] == "127.0.0.1"
    assert checked["certificate"]["subject"] == "CN=rebind.test"
    assert names == ["rebind.test"] and seen == [("/", f"rebind.test:{port}")]
    assert rebinding_dns == ["rebind.test"]  # resolved once: no second answer was used


# ---- item 9: review_diff stays inside the roots ------------------------------------------

@pytest.fixture
def review_tree(tmp_path: Path) -> tuple[FastMCP, Path, Path]:
    repo, outside = tmp_path / "repo", tmp_path / "outside-secret-dir"
    repo.mkdir()
    outside.mkdir()
    (outside / "x.py").write_text("import os\nos.system(input())\nexcept:\n")
    (repo / "app.py").write_text("print('hi')\nimport os\nos.system('ls')\n")
    (repo / "link").symlink_to(outside)
    (repo / "x.py").symlink_to(outside / "x.py")
    server = code_review.build(CodeReviewAgentSettings(roots=[repo]))
    return server, repo, outside


def _diff(path: str) -> str:
    return (f"--- a/{path}\n+++ b/{path}\n@@ -1,1 +1,3 @@\n print('hi')\n+import os\n"
            "+os.system(input())\n")


@pytest.mark.parametrize("path", ["../outside-secret-dir/x.py", "link/x.py", "x.py",
                                  "/etc/passwd.py", "app.py/../../outside-secret-dir/x.py"])
@pytest.mark.parametrize("repository", [".", None])
async def test_review_diff_refuses_paths_outside_the_roots(
        review_tree: tuple[FastMCP, Path, Path], path: str, repository: str | None) -> None:
    server, repo, outside = review_tree
    arguments: dict[str, Any] = {"diff": _diff(path)}
    if repository is not None:
        arguments["repository"] = repository
    message = error(await call(server, "review_diff", **arguments))
    assert f"the diff names {path!r}, which is outside the repository" in message
    assert str(outside) not in message and str(repo) not in message


async def test_review_diff_still_reviews_files_inside(
        review_tree: tuple[FastMCP, Path, Path]) -> None:
    server, _, _ = review_tree
    report = data(await call(server, "review_diff", diff=_diff("app.py"), repository="."))
    assert {(f["path"], f["line"], f["rule"]) for f in report["findings"]} >= {
        ("app.py", 3, "os-system")}
    assert all(f["path"] == "app.py" for f in report["findings"])


async def test_review_diff_of_a_huge_line_is_linear(
        review_tree: tuple[FastMCP, Path, Path]) -> None:
    # `\w*(password|...)` on Python's re is quadratic: 20,000 characters took 20 s there.
    server, _, _ = review_tree
    diff = "--- a/app.py\n+++ b/app.py\n@@ -1,1 +1,2 @@\n print('hi')\n+" + "a" * 1_000_000
    started = time.monotonic()
    result, gap = await with_heartbeat(call(server, "review_diff", diff=diff))
    assert time.monotonic() - started < 5
    assert gap < 1.0, f"the event loop stalled for {gap:.1f} s"
    assert data(result)["findings"] == []
