"""The approval card for MCP Apps hosts: `orchestrator-mcp serve` in a subprocess with the
scripted model, the real fastmcp Client declaring (or not) the `io.modelcontextprotocol/ui`
extension, the npm server-memory (whose `delete_entities` is marked destructive), the
ansible agent's dry run; then the card itself in headless Chromium inside a test host page
that speaks the reference host protocol (ext-apps' AppBridge, tests/apps_host/)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client
from fastmcp.apps.config import UI_EXTENSION_ID, UI_MIME_TYPE
from fastmcp.client.elicitation import ElicitResult
from fastmcp.client.transports import StdioTransport, StreamableHttpTransport
from mcp.client.extension import advertise

from tests.browser import ARTIFACTS, chromium
from tests.conftest import REPO, npm_server, write_config
from tests.fake_openai import FakeOpenAI
from tests.test_front import http_server

CARD_URI = "ui://orchestrator/approval-card.html"
HOSTILE = "<img src=x onerror=alert(1)>"
DELETE_HOSTILE = "CALL memory_delete_entities " + json.dumps({"entityNames": [HOSTILE]})
APPS = [advertise(UI_EXTENSION_ID, {"mimeTypes": [UI_MIME_TYPE]})]
HOST_PAGE = Path(__file__).parent / "apps_host"


class Asker:
    """An elicitation handler that declines and keeps the questions."""

    def __init__(self) -> None:
        self.questions: list[str] = []

    async def __call__(self, message: str, response_type: Any, params: Any,
                       context: Any) -> Any:
        self.questions.append(message)
        return ElicitResult(action="decline")


@asynccontextmanager
async def front(tmp_path: Path, llm: FakeOpenAI, apps: bool, asker: Asker | None = None,
                mode: str = "auto") -> AsyncIterator[Client]:
    memory = {"command": "node", "args": [str(npm_server("memory"))],
              "env": {"MEMORY_FILE_PATH": str(tmp_path / "memory.jsonl")}}
    config = write_config(tmp_path / "config", {"memory": memory},
                          agents={"ansible": {"playbooks_dir": str(REPO / "playbooks")}})
    transport = StdioTransport(
        sys.executable, ["-m", "orchestrator_mcp", "--config-dir", str(config), "--data-dir",
                         str(tmp_path / "data"), "serve"],
        env={**os.environ, **llm.env()}, log_file=tmp_path / "stderr.log")
    async with Client(transport, extensions=APPS if apps else None, mode=mode,
                      elicitation_handler=asker or Asker(), timeout=120) as client:
        async with asyncio.timeout(30):
            while any(s["status"] != "up" for s in (await client.call_tool(
                    "list_servers", {})).structured_content["result"]):
                await asyncio.sleep(0.05)
        yield client


async def test_card_resource_and_the_tools_that_show_it(tmp_path: Path, llm) -> None:
    async with front(tmp_path, llm, apps=True) as client:
        resources = {str(r.uri): r for r in await client.list_resources()}
        tools = {t.name: t for t in await client.list_tools()}
        read = await client.read_resource(CARD_URI)
    listed = resources[CARD_URI]
    assert listed.mime_type == UI_MIME_TYPE == "text/html;profile=mcp-app"
    assert listed.meta["ui"] == {"csp": {}, "prefersBorder": True}  # no network at all
    page = read[0]
    assert page.mime_type == UI_MIME_TYPE
    html = page.text
    assert "__CSP__" not in html and "default-src 'none'; script-src 'sha256-" in html
    assert "http://" not in html and "https://" not in html  # self-contained
    for name in ("run", "ask_agent", "run_workflow", "get_run", "approve"):
        assert tools[name].meta["ui"] == {"resourceUri": CARD_URI}, name
    assert "ui" not in (tools["list_runs"].meta or {})


@pytest.mark.parametrize("mode", ["legacy", "auto"])  # handshake era; 2026-07-28
async def test_apps_host_gets_the_card_instead_of_a_question(tmp_path: Path, llm,
                                                             mode: str) -> None:
    asker = Asker()
    async with front(tmp_path, llm, apps=True, asker=asker, mode=mode) as client:
        result = await client.call_tool_mcp("run", {"goal": DELETE_HOSTILE, "wait": True})
        view = result.structured_content
        again = (await client.call_tool_mcp("get_run", {"run_id": view["run_id"]}))
    assert asker.questions == []  # the card asks, not an inline question
    assert view["status"] == "awaiting_approval"
    assert view["pending_approval"]["arguments"] == {"entityNames": [HOSTILE]}
    card = view["approval_card"]
    assert card == {"server": "memory", "can_decide": True, "why_not": None, "dry_run": None,
                    "hints": {"read_only": False, "destructive": True, "idempotent": True,
                              "open_world": False}}
    assert "approval card" in view["next"] and "do not approve" in view["next"]
    text = json.loads(result.content[0].text)  # what the model reads: no card internals
    assert "approval_card" not in text and text["next"] == view["next"]
    assert again.structured_content["approval_card"]["server"] == "memory"
    assert again.structured_content["id"] == view["run_id"]


@pytest.mark.parametrize("mode", ["legacy", "auto"])  # elicitation; input-required (2026-07-28)
async def test_text_host_keeps_todays_text_and_question(tmp_path: Path, llm, mode: str) -> None:
    """A host without the extension is asked inline as before; a declined question leaves
    the call waiting for approve() and is not asked again."""
    asker = Asker()
    async with front(tmp_path, llm, apps=False, asker=asker, mode=mode) as client:
        result = await client.call_tool_mcp("run", {"goal": DELETE_HOSTILE, "wait": True})
        record = await client.call_tool_mcp("get_run", {"run_id": result.structured_content[
            "run_id"]})
    view = result.structured_content
    assert len(asker.questions) == 1 and "memory_delete_entities" in asker.questions[0]
    assert view["status"] == "awaiting_approval" and "approval_card" not in view
    assert view["next"].startswith(f"call approve(run_id='{view['run_id']}'")
    assert json.loads(result.content[0].text) == view
    assert "approval_card" not in record.structured_content


async def test_card_shows_the_dry_run_once(tmp_path: Path, llm) -> None:
    pytest.importorskip("ansible_runner")
    target = tmp_path / "app-logs"
    target.mkdir()
    month_ago = time.time() - 30 * 86400
    for name in ("old.log", "new.log"):
        (target / name).write_text(name)
    os.utime(target / "old.log", (month_ago, month_ago))
    goal = "CALL ansible_run " + json.dumps({"playbook": "clean-old-files",
                                             "extra_vars": {"target_dir": str(target)}})
    async with front(tmp_path, llm, apps=True) as client:
        view = (await client.call_tool_mcp("run", {"goal": goal, "wait": True})
                ).structured_content
        again = (await client.call_tool_mcp("get_run", {"run_id": view["run_id"]})
                 ).structured_content
        await asyncio.sleep(0.5)  # the audit is written in batches
        checks = (await client.call_tool("audit", {"tool": "ansible_check"})
                  ).structured_content["result"]
    dry_run = view["approval_card"]["dry_run"]
    assert dry_run["tool"] == "ansible_check" and not dry_run["failed"]
    assert "1 task(s) would change" in dry_run["text"] and str(target / "old.log") in \
        dry_run["text"]
    assert again["approval_card"]["dry_run"] == dry_run
    assert [c["outcome"] for c in checks] == ["dry run; ok"]  # made once per pending call
    assert {p.name for p in target.iterdir()} == {"old.log", "new.log"}


async def test_a_token_without_approve_sees_the_card_without_buttons(tmp_path: Path,
                                                                    llm) -> None:
    """Over HTTP the card says who may decide; a read-only caller makes no dry run."""
    pytest.importorskip("ansible_runner")
    runner, reader = "runner-token-cards-012345", "reader-token-cards-012345"
    config = write_config(tmp_path / "config", {}, agents={"ansible": {
        "playbooks_dir": str(REPO / "playbooks")}}, http={"tokens": [
            {"name": "runner", "token": runner, "scopes": ["read", "run"]},
            {"name": "dashboard", "token": reader, "scopes": ["read", "read_all"]}]})
    env = {k: v for k, v in os.environ.items() if k != "ORCH_HTTP_TOKEN"}
    goal = "CALL ansible_run " + json.dumps({"playbook": "clean-old-files", "extra_vars": {
        "target_dir": str(tmp_path)}})
    with http_server(config, tmp_path / "data", {**env, **llm.env()}) as base:
        async with Client(StreamableHttpTransport(f"{base}/mcp", auth=runner), timeout=60,
                          extensions=APPS) as client:
            view = (await client.call_tool_mcp("run", {"goal": goal, "wait": True})
                    ).structured_content
        async with Client(StreamableHttpTransport(f"{base}/mcp", auth=reader), timeout=60,
                          extensions=APPS) as client:
            record = (await client.call_tool_mcp("get_run", {"run_id": view["run_id"]})
                      ).structured_content
    assert view["status"] == "awaiting_approval"
    for card in (view["approval_card"], record["approval_card"]):
        assert card["can_decide"] is False and card["dry_run"] is None
    assert record["approval_card"]["why_not"] == "token 'dashboard' lacks the 'approve' scope"
    assert view["approval_card"]["why_not"] == "token 'runner' lacks the 'approve' scope"


# --- the card in a browser --------------------------------------------------------------

def _quiet_handler(directory: Path) -> type[SimpleHTTPRequestHandler]:
    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    return functools.partial(Handler, directory=str(directory))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def host_page() -> Iterator[str]:
    """The test host page over real HTTP on 127.0.0.1."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _quiet_handler(HOST_PAGE))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/host.html"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium("900,1000", console_log=True) as driver:
        yield driver


class AppsHost:
    """Drives host.html: the card gets a real tool result, and each `tools/call` it sends is
    made against the real front with the same Client, then answered."""

    def __init__(self, driver: Any, client: Client) -> None:
        self.driver = driver
        self.client = client
        self.answered = 0

    async def js(self, script: str, *args: Any) -> Any:
        return await asyncio.to_thread(self.driver.execute_script, script, *args)

    async def start(self, url: str, html: str, arguments: dict, result: Any,
                    theme: str = "light") -> None:
        await asyncio.to_thread(self.driver.get, url)
        wire = result.model_dump(mode="json", by_alias=True, exclude_none=True)
        await self.js("return startCard(...arguments)", html, arguments, wire, theme)
        async with asyncio.timeout(20):
            while not await self.js("return window.host.initialized"):
                await asyncio.sleep(0.05)

    async def relay_calls(self, count: int, timeout: float = 60) -> list[dict]:
        """Answer the card's tools/call requests until `count` have been made."""
        async with asyncio.timeout(timeout):
            while True:
                calls = await self.js("return window.host.calls")
                for index in range(self.answered, len(calls)):
                    call = calls[index]
                    result = await self.client.call_tool_mcp(call["name"], call["arguments"])
                    wire = result.model_dump(mode="json", by_alias=True, exclude_none=True)
                    await self.js("answerCall(arguments[0], arguments[1])", index, wire)
                    self.answered += 1
                if len(calls) >= count:
                    return calls
                await asyncio.sleep(0.1)

    async def in_card(self, script: str, *args: Any) -> Any:
        def run() -> Any:
            frame = self.driver.find_element("css selector", "iframe#card")
            self.driver.switch_to.frame(frame)
            try:
                return self.driver.execute_script(script, *args)
            finally:
                self.driver.switch_to.default_content()
        return await asyncio.to_thread(run)

    async def until_card(self, script: str, timeout: float = 30) -> Any:
        async with asyncio.timeout(timeout):
            while not (value := await self.in_card(script)):
                await asyncio.sleep(0.1)
        return value

    async def screenshot(self, name: str) -> None:
        await asyncio.sleep(0.2)  # the iframe takes the size the card asked for
        await asyncio.to_thread(self.driver.save_screenshot, str(ARTIFACTS / name))

    def console(self) -> list[str]:
        return [e["message"] for e in self.driver.get_log("browser")]


async def test_card_approves_through_the_host(tmp_path: Path, llm, browser, host_page) -> None:
    async with front(tmp_path, llm, apps=True) as client:
        html = (await client.read_resource(CARD_URI))[0].text
        arguments = {"goal": DELETE_HOSTILE, "wait": True}
        result = await client.call_tool_mcp("run", arguments)
        run_id = result.structured_content["run_id"]
        host = AppsHost(browser, client)
        await host.start(host_page, html, arguments, result)

        shown = await host.until_card("return document.querySelector('#approve') && "
                                      "document.body.innerText")
        assert "Approval needed" in shown and "memory_delete_entities" in shown
        assert "destructive" in shown and run_id in shown
        # The hostile argument is text, not markup.
        assert HOSTILE in await host.in_card(
            "return document.querySelector('pre[aria-label=arguments]').textContent")
        assert await host.in_card("return document.querySelectorAll('img').length") == 0
        await host.screenshot("approval-card-waiting.png")

        await host.in_card("document.querySelector('#reason').value = arguments[0];"
                           "document.querySelector('#approve').click()", "checked the list")
        calls = await host.relay_calls(1)
        assert calls[0] == {"name": "approve", "arguments": {
            "run_id": run_id, "approved": True, "reason": "checked the list"}}
        # The card follows the run through the host (get_run) until it has ended.
        while "completed" not in await host.in_card("return document.body.innerText"):
            calls = await host.relay_calls(len(calls) + 1)
        assert {c["name"] for c in calls[1:]} == {"get_run"}
        await host.screenshot("approval-card-approved.png")
        record = (await client.call_tool("get_run", {"run_id": run_id})).structured_content
    assert record["status"] == "completed"
    decision = [s for s in record["steps"] if s["kind"] == "approval"][-1]
    assert "approved" in decision["summary"] and "checked the list" in decision["summary"]
    console = host.console()
    assert not [m for m in console if "Content Security Policy" in m], console
    assert not browser.execute_script("return window.host.errors")


async def test_card_rejects_with_a_reason_in_dark(tmp_path: Path, llm, browser,
                                                  host_page) -> None:
    pytest.importorskip("ansible_runner")
    target = tmp_path / "app-logs"
    target.mkdir()
    month_ago = time.time() - 30 * 86400
    for name in ("old.log", "new.log"):
        (target / name).write_text(name)
    os.utime(target / "old.log", (month_ago, month_ago))
    arguments = {"goal": "CALL ansible_run " + json.dumps({
        "playbook": "clean-old-files", "extra_vars": {"target_dir": str(target)}}),
        "wait": True}
    async with front(tmp_path, llm, apps=True) as client:
        html = (await client.read_resource(CARD_URI))[0].text
        result = await client.call_tool_mcp("run", arguments)
        run_id = result.structured_content["run_id"]
        host = AppsHost(browser, client)
        await host.start(host_page, html, arguments, result, theme="dark")
        shown = await host.until_card("return document.querySelector('#reject') && "
                                      "document.body.innerText")
        assert "Dry run (ansible_check)" in shown and "old.log" in shown
        await host.screenshot("approval-card-dry-run-dark.png")
        await host.in_card("document.querySelector('#reason').value = arguments[0];"
                           "document.querySelector('#reject').click()", HOSTILE)
        calls = await host.relay_calls(1)
        assert calls[0] == {"name": "approve", "arguments": {
            "run_id": run_id, "approved": False, "reason": HOSTILE}}
        await host.until_card("return document.body.innerText.includes('You rejected')")
        with contextlib.suppress(TimeoutError):  # the card may follow the run once more
            await host.relay_calls(len(calls) + 1, timeout=5)
        record = (await client.call_tool("get_run", {"run_id": run_id})).structured_content
    assert record["pending_approval"] is None
    assert {p.name for p in target.iterdir()} == {"old.log", "new.log"}
