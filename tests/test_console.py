"""The operator console (/console): a real `serve --http` with scoped tokens, the scripted
Chat Completions server, a real downstream FastMCP server, and a real headless Chromium
(Debian's, driven by selenium through /usr/bin/chromedriver) for the pages; plain HTTP for
headers, scopes and escaping. Screenshots go to tests/artifacts/."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from tests.browser import ARTIFACTS, chromium
from tests.conftest import COUNTER_SERVER, REPO, write_config
from tests.fake_openai import FakeOpenAI
from tests.test_front import http_server

MAIN = "main-token-console-0123456"
READER = "reader-token-console-01234"
APPROVER = "approver-token-console-012"
RUNNER = "runner-token-console-01234"
STATIC = REPO / "orchestrator_mcp" / "sidecar" / "console" / "static"
HOSTILE = '</script><script>alert(1)</script><img src=x onerror="alert(2)">'


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("console")
    count_file = tmp / "counts.txt"
    count_file.touch()
    config = write_config(
        tmp / "config",
        {"counter": {"command": sys.executable,
                     "args": [str(COUNTER_SERVER), "--count-file", str(count_file)]}},
        agents={"ansible": {"playbooks_dir": str(REPO / "playbooks")}},
        http={"tokens": [{"name": "reader", "token": READER, "scopes": ["read", "read_all"]},
                         {"name": "approver", "token": APPROVER,
                          "scopes": ["read", "read_all", "approve"]},
                         {"name": "runner", "token": RUNNER, "scopes": ["run"]}]})
    (config / "profiles.yaml").write_text(yaml.safe_dump({
        "profiles": {"default": {"role": "Test planner.",
                                 "approval": {"require": ["counter_append"]}}},
        "workflows": {"sum-up": {
            "description": f"Adds two numbers {HOSTILE}", "profile": "default",
            "inputs": {"a": {"type": "integer", "required": True},
                       "b": {"type": "integer", "default": 2},
                       "tags": {"type": "array", "description": "labels"}},
            "steps": [{"id": "add", "tool": "counter_add",
                       "arguments": {"a": "{{ inputs.a }}", "b": "{{ inputs.b }}"}}]}}}))
    with FakeOpenAI() as llm:
        env = {k: v for k, v in os.environ.items() if k != "ORCH_HTTP_TOKEN"}
        env.update(llm.env(), ORCH_HTTP_TOKEN=MAIN)
        with http_server(config, tmp / "data", env) as url:
            yield url


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def start_run(url: str, goal: str) -> str:
    with httpx2.Client(base_url=url, timeout=30) as http:
        started = http.post("/runs", headers=bearer(MAIN), json={"goal": goal})
        assert started.status_code == 201, started.text
        return started.json()["id"]


def run_until(url: str, run_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    with httpx2.Client(base_url=url, timeout=30) as http:
        while True:
            record = http.get(f"/runs/{run_id}", headers=bearer(MAIN)).json()
            if record["status"] in statuses or time.monotonic() > deadline:
                assert record["status"] in statuses, json.dumps(record)[-3000:]
                return record
            time.sleep(0.2)


# ---- plain HTTP ----------------------------------------------------------------------------


def test_security_headers_on_pages_assets_fragments_and_refusals(served: str) -> None:
    with httpx2.Client(base_url=served) as http:
        answers = [http.get(path) for path in (
            "/console", "/console/runs", "/console/runs/run_x", "/console/approvals",
            "/console/start", "/console/static/console.js", "/console/static/console.css",
            "/console/static/htmx.min.js", "/console/api/overview")]
        answers.append(http.get("/console/api/overview", headers=bearer(READER)))
    for answer in answers:
        headers = answer.headers
        assert headers["x-content-type-options"] == "nosniff", answer.url
        assert headers["referrer-policy"] == "no-referrer"
        csp = headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert [a.status_code for a in answers] == [200] * 8 + [401, 200]
    assert "no-store" in answers[-1].headers["cache-control"]
    page = answers[0].text
    assert "<script>" not in page and "style=" not in page  # nothing inline for the CSP
    assert not re.search(r"https?://", page)  # no CDN, no external font


def test_page_shells_hold_no_data_and_every_fragment_needs_a_token(served: str) -> None:
    run_id = start_run(served, "check that the console lists this run")
    run_until(served, run_id, "completed")
    with httpx2.Client(base_url=served) as http:
        assert run_id not in http.get("/console").text
        assert run_id not in http.get("/console/runs").text
        for path in ("/console/api/me", "/console/api/overview", "/console/api/runs",
                     f"/console/api/runs/{run_id}", "/console/api/approvals",
                     "/console/api/start", "/console/api/search?q=disk"):
            refused = http.get(path)
            assert refused.status_code == 401, path
            assert run_id not in refused.text
            assert http.get(path, headers=bearer("wrong-token-0123456789ab")
                            ).status_code == 401
        for path in ("/console/api/workflows", "/console/api/agents",
                     f"/console/api/approvals/{run_id}/preview"):
            assert http.post(path, json={}).status_code == 401, path
        listed = http.get("/console/api/runs", headers=bearer(READER))
        assert listed.status_code == 200 and run_id in listed.text
        assert "Newer" not in listed.text
        later = http.get("/console/api/runs", headers=bearer(READER), params={"offset": 1})
        assert "Newer" in later.text and "offset=0" in later.text


def test_each_console_route_needs_its_scope(served: str) -> None:
    with httpx2.Client(base_url=served) as http:
        me = http.get("/console/api/me", headers=bearer(RUNNER))
        assert me.json() == {"name": "runner", "scopes": ["run"]}  # any token may ask
        refused = http.get("/console/api/overview", headers=bearer(RUNNER))
        assert refused.status_code == 403
        assert "lacks the 'read' scope" in refused.json()["detail"]
        for path in ("/console/api/workflows", "/console/api/agents"):
            refused = http.post(path, headers=bearer(READER), json={})
            assert refused.status_code == 403 and "'run' scope" in refused.json()["detail"]
        refused = http.post("/console/api/approvals/run_x/preview", headers=bearer(READER))
        assert refused.status_code == 403 and "'approve' scope" in refused.json()["detail"]
        # unlisted methods need 'admin' (fail closed), pages too
        assert http.delete("/console/api/runs/x", headers=bearer(READER)).status_code == 403
        assert http.post("/console", headers=bearer(READER)).status_code == 403
        start = http.get("/console/api/start", headers=bearer(READER)).text
        assert "needs the <code>run</code> scope" in start and "Start run" not in start
        assert "Start run" in http.get("/console/api/start", headers=bearer(MAIN)).text


def test_hostile_strings_are_escaped(served: str) -> None:
    run_id = start_run(served, f"{HOSTILE}\nCALL counter_append {json.dumps({'tag': HOSTILE})}")
    run_until(served, run_id, "awaiting_approval")
    with httpx2.Client(base_url=served, headers=bearer(APPROVER)) as http:
        for path in (f"/console/api/runs/{run_id}", "/console/api/approvals",
                     "/console/api/overview", "/console/api/runs"):
            body = http.get(path).text
            assert "<script>alert" not in body and "<img src=x" not in body, path
            assert "&lt;script&gt;" in body or "\\u003cscript" in body, path
        inbox = http.get("/console/api/approvals").text
        assert "</script>" not in inbox and "onerror=\"" not in inbox
        decided = http.post(f"/approvals/{run_id}", json={"approved": False,
                                                          "reason": HOSTILE})
        assert decided.status_code == 200, decided.text
    record = run_until(served, run_id, "completed")
    with httpx2.Client(base_url=served, headers=bearer(READER)) as http:
        body = http.get(f"/console/api/runs/{run_id}").text
    assert "<script>alert" not in body and "rejected by token &#39;approver&#39;" in body
    assert "rejected by token 'approver' (via http)" in json.dumps(record["steps"])


def test_hostile_console_requests(served: str) -> None:
    with httpx2.Client(base_url=served, headers=bearer(MAIN)) as http:
        for query in ({"status": "bogus"}, {"within": "5"}, {"within": "x" * 5000},
                      {"offset": "-1"}, {"offset": "lots"}):
            answer = http.get("/console/api/runs", params=query)
            assert answer.status_code == 400, (query, answer.text)
        assert http.get("/console/api/runs/" + "r" * 5000).status_code == 404
        assert http.get("/console/runs/" + "r" * 5000).status_code == 404
        shell = http.get("/console/runs/%22%3E%3Cscript%3Ealert(1)%3Cb%3E")
        assert shell.status_code == 200 and "<script>alert" not in shell.text
        missing = http.get("/console/api/runs/run_nope")
        assert missing.status_code == 404 and "no run 'run_nope'" in missing.json()["detail"]
        assert http.get("/console/api/search", params={"q": "x" * 3000}).status_code == 400
        # the first search of a process opens LanceDB: seconds on a busy machine
        nothing = http.get("/console/api/search", params={"q": "disk full"}, timeout=120)
        assert nothing.status_code == 400 and "unknown collection" in nothing.json()["detail"]
        for path, body in (("/console/api/workflows", {"name": "ghost"}),
                           ("/console/api/agents", {"agent": "ghost", "task": "x"}),
                           ("/console/api/agents", {"agent": "system", "task": ""}),
                           ("/console/api/agents", {"agent": "system", "task": "x",
                                                    "context": [1]})):
            answer = http.post(path, json=body)
            assert answer.status_code in (400, 404), (body, answer.text)
            assert answer.json()["detail"], answer.text
        assert "unknown or disabled agent 'ghost'" in http.post(
            "/console/api/agents", json={"agent": "ghost", "task": "x"}).json()["detail"]
        for content in (b"not json", b"[" * 30_000 + b"]" * 30_000,
                        b'{"name": "x", "inputs": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001):
            answer = http.post("/console/api/workflows", content=content)
            assert answer.status_code == 400, answer.text
        assert http.get("/console/static/../app.py").status_code == 404


def test_the_dry_run_of_a_pending_call_is_shown_on_request(served: str,
                                                           tmp_path: Path) -> None:
    pytest.importorskip("ansible_runner")
    target = tmp_path / "app-logs"
    target.mkdir()
    month_ago = time.time() - 30 * 86400
    for name in ("old.log", "new.log"):
        (target / name).write_text(name)
    os.utime(target / "old.log", (month_ago, month_ago))
    arguments = {"playbook": "clean-old-files", "extra_vars": {"target_dir": str(target)}}
    run_id = start_run(served, f"CALL ansible_run {json.dumps(arguments)}")
    run_until(served, run_id, "awaiting_approval")
    with httpx2.Client(base_url=served, timeout=120) as http:
        inbox = http.get("/console/api/approvals", headers=bearer(APPROVER)).text
        assert "Dry run (ansible_check)" in inbox
        assert "Dry run" not in http.get("/console/api/approvals", headers=bearer(READER)).text
        preview = http.post(f"/console/api/approvals/{run_id}/preview",
                            headers=bearer(APPROVER))
        assert preview.status_code == 200, preview.text
        assert "1 task(s) would change" in preview.text and "old.log" in preview.text
        assert {p.name for p in target.iterdir()} == {"old.log", "new.log"}
        http.post(f"/approvals/{run_id}", headers=bearer(APPROVER), json={"approved": False})
        run_until(served, run_id, "completed")
        late = http.post(f"/console/api/approvals/{run_id}/preview", headers=bearer(APPROVER))
        assert late.status_code == 409 and "not waiting" in late.json()["detail"]


def test_workflows_and_agents_start_through_the_front_tools_checks(served: str) -> None:
    with httpx2.Client(base_url=served, headers=bearer(RUNNER), timeout=30) as http:
        bad = http.post("/console/api/workflows", json={"name": "sum-up",
                                                        "inputs": {"a": "three"}})
        assert bad.status_code == 400 and "input 'a' must be an integer" in bad.text
        missing = http.post("/console/api/workflows", json={"name": "sum-up", "inputs": {}})
        assert missing.status_code == 400 and "input 'a' is required" in missing.text
        started = http.post("/console/api/workflows", json={"name": "sum-up",
                                                            "inputs": {"a": "3"}})
        assert started.status_code == 201, started.text
        assert started.headers["location"] == f"/console/runs/{started.json()['run_id']}"
        asked = http.post("/console/api/agents", json={"agent": "system", "task": "uptime?"})
        assert asked.status_code == 201, asked.text
    record = run_until(served, started.json()["run_id"], "completed")
    assert record["source"] == "console" and record["workflow"] == "sum-up"
    assert run_until(served, asked.json()["run_id"], "completed", "failed")["profile"] == "system"


def test_modified_arguments_are_checked_against_the_tool_schema(served: str) -> None:
    """Every face: the engine refuses arguments that do not fit, before the run sees them."""
    run_id = start_run(served, 'CALL counter_set_value {"value": 1}')
    run_until(served, run_id, "awaiting_approval")
    with httpx2.Client(base_url=served, headers=bearer(APPROVER)) as http:
        for wrong in ({"value": "seven"}, {}, {"value": 1, "extra": {"a": [1] * 10}}):
            refused = http.post(f"/approvals/{run_id}", json={
                "approved": True, "modified_arguments": wrong})
            if "extra" in wrong and refused.status_code == 200:
                pytest.fail("the schema allows extra arguments: pick another example")
            assert refused.status_code == 400, (wrong, refused.text)
            assert refused.json()["detail"][0]["problem"], refused.text
        still = run_until(served, run_id, "awaiting_approval")
        assert still["pending_approval"]["arguments"] == {"value": 1}
        http.post(f"/approvals/{run_id}", json={"approved": False})
    run_until(served, run_id, "completed")


def test_vendored_htmx_is_the_pinned_version() -> None:
    pinned = json.loads((REPO / "package.json").read_text())["dependencies"]["htmx.org"]
    vendored = (STATIC / "htmx.min.js").read_text()
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), "pin htmx.org to an exact version"
    assert f'version:"{pinned}"' in vendored, "copy dist/htmx.min.js of the pinned version"


def test_every_template_and_asset_ships_in_the_wheel() -> None:
    import tomllib
    from fnmatch import fnmatch

    package = STATIC.parent
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["orchestrator_mcp.sidecar.console"]
    files = [p.relative_to(package).as_posix() for folder in ("templates", "static")
             for p in (package / folder).rglob("*") if p.is_file()]
    assert files and all(any(fnmatch(f, g) and f.count("/") == g.count("/") for g in globs)
                         for f in files), files


# ---- a real browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        driver.set_script_timeout(20)
        yield driver


def wait_for(condition: Any, timeout: float = 30, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:  # noqa: BLE001 - an element not there yet, a stale one
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.1)


def css(driver: Any, selector: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def all_css(driver: Any, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def sign_in(driver: Any, url: str, token: str) -> None:
    driver.get(url + "/console")
    driver.execute_script("sessionStorage.clear()")
    driver.get(url + "/console")
    field = wait_for(lambda: css(driver, "#token") if css(driver, "#token").is_displayed()
                     else None, what="the sign-in form")
    field.send_keys(token)
    css(driver, "#signin-form button").click()
    wait_for(lambda: css(driver, "#who").is_displayed(), what="signed in")


def screenshot(driver: Any, name: str) -> None:
    driver.save_screenshot(str(ARTIFACTS / f"console-{name}.png"))


def set_arguments(driver: Any, text: str) -> None:
    field = css(driver, "#run textarea[name=arguments]")
    field.clear()
    field.send_keys(text)


def problems_shown(driver: Any) -> str:
    shown = css(driver, "#run .decide .problems")
    return shown.text if shown.is_displayed() else ""


def test_an_approver_approves_with_modified_arguments_and_watches_the_run_end(
        served: str, browser: Any) -> None:
    run_id = start_run(served, 'CALL counter_set_value {"value": 1}')
    run_until(served, run_id, "awaiting_approval")
    sign_in(browser, served, APPROVER)
    assert "approver (approve, read, read_all)" in css(browser, "#who-name").text
    assert not css(browser, "[data-nav=start]").is_displayed()  # no 'run' scope
    link = wait_for(lambda: css(browser, f".waiting a[href='/console/runs/{run_id}']"),
                    what="the waiting run on the overview")
    screenshot(browser, "overview-light")
    link.click()
    wait_for(lambda: css(browser, "#run .decide"), what="the approval form")
    assert "counter_set_value" in css(browser, "#run .approval").text
    assert "destructive" in css(browser, "#run .risks").text

    set_arguments(browser, '{"value": 7')
    css(browser, "#run button.approve").click()
    assert "not valid JSON" in wait_for(lambda: problems_shown(browser))
    set_arguments(browser, '{"value": "seven"}')
    css(browser, "#run button.approve").click()
    assert "value: must be integer, not string" in wait_for(
        lambda: problems_shown(browser) if "integer" in problems_shown(browser) else "")
    assert run_until(served, run_id, "awaiting_approval")["pending_approval"]  # nothing sent

    set_arguments(browser, '{"value": 7}')
    css(browser, "#run input[name=reason]").send_keys("seven is the agreed value")
    screenshot(browser, "approval-light")
    css(browser, "#run button.approve").click()
    # live: the page follows the run to its end without a reload
    wait_for(lambda: css(browser, "#live").get_attribute("data-mode") == "ended",
             what="the run to end on the page")
    assert css(browser, "#run .run-state").get_attribute("data-finished") == "true"
    page = css(browser, "#run").text
    assert "value is 7" in page
    assert "approved by token 'approver' (via http): seven is the agreed value" in page
    record = run_until(served, run_id, "completed")
    assert "value is 7" in record["answer"]
    # the run stream where the server has one (GET /runs/{id}/stream), else polling
    with httpx2.Client(base_url=served, timeout=30) as http:
        streams = http.get(f"/runs/{run_id}/stream", headers=bearer(READER)).headers.get(
            "content-type", "").startswith("text/event-stream")
    followed_by = css(browser, "#live").get_attribute("data-followed-by")
    assert followed_by == ("stream" if streams else "poll")
    screenshot(browser, "run-light")

    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [
        {"name": "prefers-color-scheme", "value": "dark"}]})
    try:
        browser.refresh()
        wait_for(lambda: css(browser, "#run .run-state"), what="the run in dark mode")
        background = browser.execute_script(
            "return getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(17, 20, 24)", background
        screenshot(browser, "run-dark")
        browser.set_window_size(390, 844)
        browser.get(served + "/console")
        wait_for(lambda: css(browser, "#overview table"), what="the overview, phone width")
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 400, f"the page is {width} px wide on a 390 px phone"
        screenshot(browser, "overview-phone-dark")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
        browser.set_window_size(1280, 900)


def test_a_reader_sees_no_decisions_and_is_refused_when_posting_one(
        served: str, browser: Any) -> None:
    run_id = start_run(served, 'CALL counter_bump {}')
    run_until(served, run_id, "awaiting_approval")
    browser.get(served + "/console/approvals")
    browser.execute_script("sessionStorage.clear()")
    browser.refresh()
    field = wait_for(lambda: css(browser, "#token") if css(browser, "#token").is_displayed()
                     else None, what="the sign-in form")
    field.send_keys("not-a-token-0123456789")
    css(browser, "#signin-form button").click()
    assert "invalid bearer token" in wait_for(lambda: css(browser, "#signin-error").text)
    assert not css(browser, "#content").is_displayed()
    assert browser.execute_script(
        "return sessionStorage.getItem('orchestrator-console-token')") is None
    sign_in(browser, served, READER)
    browser.get(served + "/console/approvals")
    card = wait_for(lambda: css(browser, f".approval[data-run-id='{run_id}']"),
                    what="the pending call in the inbox")
    assert "counter_bump" in card.text and "needs the approve scope" in card.text
    assert not all_css(browser, ".approval button")
    assert not all_css(browser, ".approval textarea")
    screenshot(browser, "inbox-reader")
    answer = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/approvals/' + encodeURIComponent(arguments[0]), {method: 'POST',
              headers: {'Authorization': 'Bearer ' + sessionStorage.getItem(arguments[1]),
                        'Content-Type': 'application/json'},
              body: JSON.stringify({approved: true})})
          .then(async (r) => done({status: r.status, body: await r.json()}));
    """, run_id, "orchestrator-console-token")
    assert answer["status"] == 403
    assert "lacks the 'approve' scope" in answer["body"]["detail"]
    css(browser, "#sign-out").click()
    wait_for(lambda: css(browser, "#token").is_displayed(), what="signed out")
    assert browser.execute_script(
        "return sessionStorage.getItem('orchestrator-console-token')") is None
    assert not css(browser, "#content").is_displayed()
    assert browser.get_cookies() == []  # no cookie anywhere: nothing to forge
    assert run_until(served, run_id, "awaiting_approval")
    with httpx2.Client(base_url=served) as http:
        http.post(f"/approvals/{run_id}", headers=bearer(MAIN), json={"approved": False})


def test_a_workflow_form_is_made_from_its_inputs(served: str, browser: Any) -> None:
    sign_in(browser, served, MAIN)
    browser.get(served + "/console/start")
    summary = wait_for(lambda: css(browser, "details.workflow summary"), what="workflows")
    assert "<script>" in summary.text  # shown as text, not run
    summary.click()
    form = css(browser, "form[data-kind=workflow]")
    fields = {f.get_attribute("name"): f for f in form.find_elements("css selector", "[name]")}
    assert set(fields) == {"input:a", "input:b", "input:tags"}
    assert fields["input:a"].get_attribute("type") == "number"
    assert fields["input:b"].get_attribute("placeholder") == "2"
    fields["input:tags"].send_keys('{"not": "a list"}')
    form.find_element("css selector", "button").click()
    assert "tags: must be a JSON array" in wait_for(
        lambda: form.find_element("css selector", ".problems").text)
    fields["input:tags"].clear()
    fields["input:tags"].send_keys('["x"]')
    form.find_element("css selector", "button").click()
    assert "input 'a' is required" in wait_for(
        lambda: form.find_element("css selector", ".problems").text)  # the server's check
    screenshot(browser, "start-light")
    css(browser, "#search-q").send_keys("disk full")
    css(browser, "form.search button").click()
    assert "unknown collection 'runbooks'" in wait_for(
        lambda: css(browser, "#search-hits .error").text)  # shown where it was asked
    fields["input:a"].send_keys("40")
    form.find_element("css selector", "button").click()
    wait_for(lambda: "/console/runs/wf_" in browser.current_url, what="the workflow run page")
    wait_for(lambda: css(browser, "#live").get_attribute("data-mode") == "ended",
             what="the workflow run to end")
    assert "counter_add" in css(browser, "#run").text


def test_a_runner_starts_a_run_from_the_form(served: str, browser: Any) -> None:
    sign_in(browser, served, MAIN)
    browser.get(served + "/console/start")
    goal = wait_for(lambda: css(browser, "#run-goal"), what="the run form")
    goal.send_keys('CALL counter_add {"a": 2, "b": 3}')
    css(browser, "#run-context").send_keys("[1, 2]")
    css(browser, "form[data-kind=run] button").click()
    assert "must be a JSON object" in wait_for(
        lambda: css(browser, "form[data-kind=run] .problems").text)
    css(browser, "#run-context").clear()
    css(browser, "#run-context").send_keys('{"ticket": "OPS-7"}')
    css(browser, "form[data-kind=run] button").click()
    wait_for(lambda: "/console/runs/" in browser.current_url, what="the new run's page")
    wait_for(lambda: css(browser, "#run .run-state").get_attribute("data-finished") == "true",
             what="the run to end")
    text = css(browser, "#run").text
    assert "counter_add: ok" in text and "DONE" in text and "OPS-7" in text
    run_id = browser.current_url.rsplit("/", 1)[1]

    browser.get(served + "/console/runs")
    wait_for(lambda: css(browser, f"#runs a[href='/console/runs/{run_id}']"), what="runs")
    from selenium.webdriver.support.ui import Select

    Select(css(browser, "#run-filters select[name=status]")).select_by_value(
        "awaiting_approval")
    wait_for(lambda: not all_css(browser, f"#runs a[href='/console/runs/{run_id}']"),
             what="the filter to drop the completed run")
    statuses = {e.text for e in all_css(browser, "#runs .badge")}
    assert statuses <= {"awaiting approval"}, statuses
    browser.set_window_size(390, 844)
    try:
        Select(css(browser, "#run-filters select[name=status]")).select_by_value("")
        wait_for(lambda: css(browser, f"#runs a[href='/console/runs/{run_id}']"), what="all")
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= 400, f"the runs page is {width} px wide on a 390 px phone"
        screenshot(browser, "runs-phone-light")
    finally:
        browser.set_window_size(1280, 900)
