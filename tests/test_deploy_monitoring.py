"""The monitoring stack's files (deploy/prometheus, deploy/grafana) against real parts:
promtool checks and unit-tests the alert rules; a real Prometheus scrapes a real
`serve --http` (bearer token from a file, as in deploy/compose.yaml) after a small workload
(runs with the scripted model, tool calls, an approval, webhooks) and answers every
dashboard panel's query with data; the dashboard JSON is checked for current Grafana."""

from __future__ import annotations

import asyncio
import json
import math
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from tests.conftest import REPO, free_port, npm_server, wait_for_port, write_config
from tests.fake_openai import FakeOpenAI
from tests.test_alerts import notification
from tests.test_front import http_server

DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "orchestrator-mcp.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
TOKEN = "monitoring-token-0123456789"
ALERT_TOKEN = "monitoring-alert-token-0123"
# Panel types Grafana 10/11/12 ships (core panels); anything else needs a plugin.
GRAFANA_PANEL_TYPES = {"row", "timeseries", "stat", "gauge", "bargauge", "table",
                       "state-timeline", "status-history", "text", "heatmap", "piechart",
                       "barchart", "logs", "alertlist"}
# $__rate_interval is Grafana's; the test's Prometheus scrapes every second.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}

promtool = shutil.which("promtool")
prometheus = shutil.which("prometheus")


def panels() -> list[dict[str, Any]]:
    found = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        found += [panel, *panel.get("panels", [])]
    return found


def queries() -> list[tuple[str, str]]:
    """(panel title and refId, PromQL) for every target of every panel."""
    return [(f"{panel['title']} [{target['refId']}]", target["expr"])
            for panel in panels() for target in panel.get("targets", [])]


# ---- alert rules -----------------------------------------------------------------------------


@pytest.mark.skipif(promtool is None, reason="promtool is not installed (apt-get install "
                    "prometheus)")
def test_rules_pass_promtool_check_and_every_rule_has_a_unit_test() -> None:
    checked = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    tested = subprocess.run([promtool, "test", "rules", "rules.test.yml"],
                            cwd=RULES.parent, capture_output=True, text=True, timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr

    alerts = {rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"]
              for rule in group["rules"]}
    tests = yaml.safe_load((RULES.parent / "rules.test.yml").read_text())["tests"]
    for name in alerts:
        cases = [case for test in tests for case in test.get("alert_rule_test", [])
                 if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in cases), f"{name}: no firing case"
        assert any(not case["exp_alerts"] for case in cases), f"{name}: no quiet case"


def test_rules_only_use_metrics_the_code_exports() -> None:
    exported = _exported_metric_names()
    exprs = " ".join(rule["expr"] + json.dumps(rule.get("annotations", {}))
                     for group in yaml.safe_load(RULES.read_text())["groups"]
                     for rule in group["rules"])
    used = {word for word in _words(exprs) if word.startswith("orchestrator_")}
    assert used and used <= exported, used - exported


def test_the_disk_rule_routes_to_the_shipped_workflow() -> None:
    """HighDiskUsage's labels and annotations are what profiles.yaml's disk-full rule reads."""
    rule = next(r for group in yaml.safe_load(RULES.read_text())["groups"]
                for r in group["rules"] if r.get("alert") == "HighDiskUsage")
    disk_full = next(r for r in yaml.safe_load((REPO / "profiles.yaml").read_text())
                     ["alerts"]["rules"] if r["name"] == "disk-full")
    assert disk_full["match"] == {"alertname": "HighDiskUsage"}
    for key in ("threshold_percent", "cleanup_dir", "log_file"):
        assert key in rule["annotations"]


# ---- dashboard -------------------------------------------------------------------------------


def test_dashboard_is_valid_for_current_grafana() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert 39 <= dashboard["schemaVersion"] <= 41  # Grafana 11.0 to 12
    assert dashboard["uid"] == "orchestrator-mcp" and dashboard["title"]
    datasource_uids = {d["uid"] for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]
                       if d["type"] == "prometheus"}
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels():
        assert panel["type"] in GRAFANA_PANEL_TYPES, panel["type"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["type"] == "prometheus", panel["title"]
        assert panel["datasource"]["uid"] in datasource_uids, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in datasource_uids, panel["title"]
            assert target["expr"].strip() and target["refId"]


def test_dashboard_covers_what_operators_watch() -> None:
    exprs = " ".join(expr for _, expr in queries())
    for metric in ("orchestrator_runs_total", "orchestrator_run_duration_seconds_bucket",
                   "orchestrator_approvals_pending", "orchestrator_approval_oldest_wait_seconds",
                   "orchestrator_downstream_calls_total", "orchestrator_downstream_up",
                   "orchestrator_llm_tokens_total", "orchestrator_llm_cost_usd_total",
                   "orchestrator_alert_notifications_total",
                   "orchestrator_alert_deduplicated_total",
                   "orchestrator_webhook_request_duration_seconds_bucket",
                   "orchestrator_runs_queued", "orchestrator_runs_executing"):
        assert metric in exprs, metric
    used = {w for w in _words(exprs) if w.startswith("orchestrator_")}
    assert used <= _exported_metric_names(), used - _exported_metric_names()


def _words(text: str) -> set[str]:
    import re

    return set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", text))


def _exported_metric_names() -> set[str]:
    """Every series name /metrics can carry, from the registry's own description."""
    from orchestrator_mcp.telemetry.metrics import REGISTRY

    names = set()
    for family in REGISTRY.collect():
        suffixes = {"counter": ["_total", "_created"],
                    "histogram": ["_bucket", "_count", "_sum", "_created"],
                    "gauge": [""]}.get(family.type, [""])
        names.update(family.name + suffix for suffix in suffixes)
    # Gauges read at scrape time (RunQueueCollector) appear once an engine feeds them.
    names.update({"orchestrator_runs_queued", "orchestrator_runs_executing",
                  "orchestrator_executors_live", "orchestrator_approval_oldest_wait_seconds"})
    return names


# ---- every panel against a real Prometheus ------------------------------------------------------


class Prometheus:
    """Debian's prometheus on a loopback port, scraping `target` every second with the
    bearer token from a file, with the shipped rules loaded."""

    def __init__(self, workdir: Path, target: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "token").write_text(TOKEN)
        shutil.copy(RULES, workdir / "rules.yml")
        (workdir / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yml"],
            "scrape_configs": [{
                "job_name": "orchestrator",
                "authorization": {"type": "Bearer", "credentials_file": "token"},
                "static_configs": [{"targets": [target]}]}],
        }))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "prometheus.log"
        self.workdir = workdir

    def __enter__(self) -> Prometheus:
        assert prometheus is not None
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [prometheus, f"--config.file={self.workdir / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, 30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(20)

    async def query(self, expr: str) -> list[dict[str, Any]]:
        async with httpx2.AsyncClient(base_url=self.url, timeout=30) as http:
            answer = (await http.get("/api/v1/query", params={"query": expr})).json()
        assert answer["status"] == "success", (expr, answer)
        return answer["data"]["result"]

    async def wait_for(self, expr: str, timeout: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = await self.query(expr)
            if result:
                return result
            await asyncio.sleep(0.5)
        raise AssertionError(f"{expr} returned nothing for {timeout} s; see {self.log}")


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Prometheus]]:
    if prometheus is None:
        pytest.skip("prometheus is not installed (apt-get install prometheus)")
    tmp = tmp_path_factory.mktemp("monitoring")
    config = write_config(
        tmp / "config",
        {"everything": {"command": "node", "args": [str(npm_server("everything")), "stdio"]}})
    (config / "profiles.yaml").write_text(yaml.safe_dump({
        "profiles": {
            "default": {"servers": ["*"]},
            "gated": {"servers": ["everything"], "approval": {"require": ["everything_echo"]}},
        },
        "alerts": {"token": ALERT_TOKEN, "rules": [
            {"name": "any", "match_re": {"alertname": ".+"}, "profile": "default"}]},
    }))
    with FakeOpenAI() as llm:
        env = {k: v for k, v in os.environ.items() if k != "ORCH_HTTP_TOKEN"}
        # a model with a price, so the cost panel has data
        env.update(llm.env(), OPENAI_MODEL="gpt-4o-mini", ORCH_HTTP_TOKEN=TOKEN)
        with http_server(config, tmp / "data", env) as url, \
                Prometheus(tmp / "prometheus", url.removeprefix("http://")) as prom:
            yield url, prom


async def _run(http: httpx2.AsyncClient, goal: str, profile: str, until: str) -> str:
    started = await http.post("/runs", json={"goal": goal, "profile": profile})
    assert started.status_code == 201, started.text
    run_id = started.json()["id"]
    async with asyncio.timeout(60):
        while (await http.get(f"/runs/{run_id}")).json()["status"] != until:
            await asyncio.sleep(0.1)
    return run_id


async def _workload(url: str, round_: int) -> None:
    """One round; the test runs two, seconds apart, so rates and quantiles have data."""
    async with httpx2.AsyncClient(base_url=url, timeout=30,
                                  headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        await _run(http, f'CALL everything_echo {{"message": "round {round_}"}}', "default",
                   "completed")
        gated = await _run(http, 'CALL everything_echo {"message": "gated"}', "gated",
                           "awaiting_approval")
        if round_ == 1:  # the second round's stays waiting: pending and its age
            decided = await http.post(f"/approvals/{gated}", json={"approved": True})
            assert decided.status_code == 200, decided.text
        alert = notification(alertname=f"DiskFilling{round_}")
        accepted = await http.post("/webhooks/alertmanager", json=alert,
                                   headers={"Authorization": f"Bearer {ALERT_TOKEN}"})
        assert accepted.status_code == 200, accepted.text
        refused = await http.post("/webhooks/alertmanager", json=alert,
                                  headers={"Authorization": "Bearer wrong-token-0123456789"})
        assert refused.status_code == 401


async def test_every_dashboard_panel_returns_data_from_a_real_scrape(
    monitored: tuple[str, Prometheus],
) -> None:
    url, prom = monitored
    await prom.wait_for('up{job="orchestrator"} == 1')
    await prom.wait_for('orchestrator_downstream_up{server="everything"} == 1')
    for round_ in (1, 2):
        await _workload(url, round_)
        await asyncio.sleep(2.5)  # scraped between and after the rounds
    await prom.wait_for("orchestrator_approvals_pending == 1")
    await prom.wait_for('orchestrator_runs_total{profile="gated", status="completed"}')

    empty, nan_only = [], []
    for title, expr in queries():
        for name, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(name, value)
        result = await prom.query(expr)
        if not result:
            empty.append(title)
        elif all(math.isnan(float(sample["value"][1])) for sample in result):
            nan_only.append(title)
    assert not empty, f"panels without data: {empty}"
    assert not nan_only, f"panels with only NaN: {nan_only}"


async def test_queue_approval_and_webhook_gauges_say_what_happened(
    monitored: tuple[str, Prometheus],
) -> None:
    url, prom = monitored
    await prom.wait_for("orchestrator_approvals_pending == 1")
    assert float((await prom.wait_for("orchestrator_executors_live"))[0]["value"][1]) == 1
    waited = await prom.wait_for("orchestrator_approval_oldest_wait_seconds > 0")
    assert float(waited[0]["value"][1]) < 600
    # the waiting run is held by this process's executor (embedded files: "local")
    executing = await prom.wait_for("orchestrator_runs_executing")
    assert {s["metric"]["executor"]: float(s["value"][1]) for s in executing} == {"local": 1}
    queued = await prom.wait_for("orchestrator_runs_queued")
    assert {s["metric"]["queue"] for s in queued} == {"orchestrator_runs",
                                                      "orchestrator_child_runs"}
    codes = await prom.wait_for("orchestrator_webhook_request_duration_seconds_count")
    counts = {s["metric"]["code"]: float(s["value"][1]) for s in codes}
    assert counts["200"] >= 2 and counts["401"] >= 2
    rejected = await prom.wait_for("orchestrator_alert_rejected_requests_total")
    assert {s["metric"]["reason"] for s in rejected} == {"unauthorized"}
    # the shipped rules loaded into a real Prometheus and evaluate
    async with httpx2.AsyncClient(base_url=prom.url) as http:
        groups = (await http.get("/api/v1/rules")).json()["data"]["groups"]
    states = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
    assert set(states) >= {"NoWorkerExecuting", "WebhookRejections", "HighDiskUsage"}
    assert "err" not in states.values(), states


# ---- the compose stack's files agree with each other ---------------------------------------

COMPOSE = DEPLOY / "compose.yaml"


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path → source, for the service's volumes."""
    return {volume.split(":")[1]: volume.split(":")[0] for volume in service["volumes"]}


def test_grafana_provisioning_matches_the_compose_mounts() -> None:
    services = _compose()["services"]
    grafana = _mounts(services["grafana"])
    assert grafana["/etc/grafana/provisioning"] == "./grafana/provisioning"
    provider = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" /
                               "orchestrator-mcp.yml").read_text())["providers"][0]
    assert grafana[provider["options"]["path"]] == "./grafana/dashboards"
    assert (DEPLOY / "grafana" / "dashboards" / DASHBOARD.name).is_file()
    datasource = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and "prometheus" in services


def test_prometheus_and_alertmanager_point_at_the_compose_services(tmp_path: Path) -> None:
    services = _compose()["services"]
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    mount = next(target for target, source in _mounts(services["prometheus"]).items()
                 if source == "./prometheus")
    assert config["rule_files"] == [f"{mount}/rules.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["orchestrator"]["static_configs"][0]["targets"] == ["orchestrator:8765"]
    assert "8765" in services["orchestrator"]["command"]
    token_file = jobs["orchestrator"]["authorization"]["credentials_file"]
    assert token_file in services["prometheus"]["command"][0]
    assert jobs["node"]["static_configs"][0]["targets"] == ["node-exporter:9100"]
    workers = jobs["orchestrator-worker"]["dns_sd_configs"][0]
    assert workers["names"] == ["worker"] and "worker" in services
    assert str(workers["port"]) in services["worker"]["command"]
    assert jobs["orchestrator-worker"]["authorization"]["credentials_file"] == token_file
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == \
        ["alertmanager:9093"]

    alertmanager = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    webhook = next(r for r in alertmanager["receivers"] if r["name"] == "orchestrator")
    hook = webhook["webhook_configs"][0]
    assert hook["url"] == "http://orchestrator:8765/webhooks/alertmanager"
    assert hook["http_config"]["authorization"]["credentials_file"] in \
        services["alertmanager"]["command"][0]
    # self-alerts (component=orchestrator-mcp) go to people, not back to the orchestrator
    assert alertmanager["route"]["routes"][0]["receiver"] == "operators"

    # promtool and amtool accept both files (paths moved to this folder)
    if promtool is not None:
        shutil.copy(RULES, tmp_path / "rules.yml")
        (tmp_path / "token").write_text(TOKEN)
        text = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
        text = text.replace(f"{mount}/rules.yml", str(tmp_path / "rules.yml"))
        text = text.replace(token_file, str(tmp_path / "token"))
        (tmp_path / "prometheus.yml").write_text(text)
        checked = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                                 capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr
    amtool = shutil.which("amtool")
    if amtool is not None:
        (tmp_path / "alert-token").write_text(ALERT_TOKEN)
        text = (DEPLOY / "alertmanager" / "alertmanager.yml").read_text()
        (tmp_path / "alertmanager.yml").write_text(
            text.replace("/tmp/alert-token", str(tmp_path / "alert-token")))
        checked = subprocess.run([amtool, "check-config", str(tmp_path / "alertmanager.yml")],
                                 capture_output=True, text=True, timeout=60)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_compose_image_can_be_overridden() -> None:
    for name, service in _compose()["services"].items():
        image = service.get("image") or _compose()["x-orchestrator"]["image"]
        assert image.startswith("${") and "_IMAGE:-" in image, name
