"""The Dockerfile and deploy/compose.yaml, built and run for real on a Docker daemon these
tests start themselves (tests/docker_daemon.py), on a Debian base made by debootstrap (no
registry is reachable here). Skipped, with the reason, when no daemon can run.

The image is built once per session (about 6 minutes on 2 shared cores from an empty
daemon; the debootstrap tarball is cached in ~/.cache between sessions). Compose runs the
stack with images that stand in for the official ones: one image FROM the same base with
Debian's prometheus, prometheus-alertmanager, prometheus-node-exporter and postgresql (a
small entrypoint does what the official postgres image does with POSTGRES_*). Grafana has no
Debian package: its files are checked in tests/test_deploy_monitoring.py.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastmcp import Client
from fastmcp.client.transports import StreamableHttpTransport

from tests.conftest import REPO, free_port
from tests.docker_daemon import DaemonUnavailable, DockerDaemon, extra_ca_bundle

IMAGE = "orchestrator-mcp:test"
TOOLS_IMAGE = "local/orchestrator-test-tools:bookworm"
TOKEN = "container-token-0123456789abcdef"
# What the build needs from the repository (the same list as .dockerignore's).
CONTEXT = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "package.json",
           "package-lock.json", "orchestrator_mcp", "servers.yaml", "profiles.yaml",
           "playbooks", "runbooks", "workflows", "examples", "deploy")

pytestmark = pytest.mark.timeout(2400)


@pytest.fixture(scope="session")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerDaemon]:
    daemon = DockerDaemon(tmp_path_factory.mktemp("docker"))
    try:
        daemon.start()
        daemon.base_image()
    except (DaemonUnavailable, subprocess.SubprocessError, RuntimeError) as exc:
        daemon.stop()
        pytest.skip(f"no Docker daemon here: {exc}")
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def image(docker: DockerDaemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The repository's Dockerfile, built on the imported base; this machine's extra CAs
    (a TLS-intercepting proxy's) go to the build stage through deploy/ca-certificates/."""
    context = tmp_path_factory.mktemp("context")
    for name in CONTEXT:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, context / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, context / name)
    bundle = extra_ca_bundle()
    if bundle:
        (context / "deploy" / "ca-certificates" / "host-extra.crt").write_text(bundle)
    started = time.monotonic()
    docker.docker("build", "--build-arg", "BASE_IMAGE=local/debian:bookworm",
                  "-t", IMAGE, str(context), timeout=3600)
    print(f"\nimage built in {time.monotonic() - started:.0f} s")
    return IMAGE


class Container:
    def __init__(self, docker: DockerDaemon, name: str) -> None:
        self.docker, self.name = docker, name

    def inspect(self) -> dict[str, Any]:
        return json.loads(self.docker.docker("inspect", self.name).stdout)[0]

    def logs(self) -> str:
        done = self.docker.docker("logs", self.name, check=False)
        return done.stdout + done.stderr


@pytest.fixture
def run_container(docker: DockerDaemon) -> Iterator[Any]:
    started: list[str] = []

    def run(*args: str, name: str) -> Container:
        docker.docker("run", "-d", "--name", name, *args)
        started.append(name)
        return Container(docker, name)

    yield run
    for name in started:
        docker.docker("rm", "-f", name, check=False)


async def wait_healthz(url: str, timeout: float = 60) -> None:
    async with httpx2.AsyncClient(timeout=5) as http:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            await asyncio.sleep(0.5)
    raise TimeoutError(f"{url}/healthz did not answer within {timeout} s")


async def test_the_image_serves_mcp_with_a_token_as_uid_1000(
    image: str, docker: DockerDaemon, run_container: Any
) -> None:
    port = free_port()
    started = time.monotonic()
    container = run_container("-p", f"127.0.0.1:{port}:8765", "-e", f"ORCH_HTTP_TOKEN={TOKEN}",
                              image, name="orch-test-serve")
    url = f"http://127.0.0.1:{port}"
    await wait_healthz(url)
    print(f"\ncontainer to /healthz in {time.monotonic() - started:.1f} s")

    async with httpx2.AsyncClient(base_url=url) as http:
        assert (await http.get("/metrics")).status_code == 401
    async with Client(StreamableHttpTransport(f"{url}/mcp", auth=TOKEN)) as client:
        async with asyncio.timeout(60):
            while True:  # the reference servers (node) and built-in agents come up
                servers = (await client.call_tool("list_servers")).structured_content
                status = {s["name"]: s["status"] for s in servers["result"]}
                if status.get("everything") == "up" and status.get("memory") == "up":
                    break
                await asyncio.sleep(0.5)
        echoed = await client.call_tool("call_tool", {
            "name": "everything_echo", "arguments": {"message": "from the container"}})
        assert "from the container" in echoed.content[0].text

    # Every process in the container runs as UID 1000 (tini, Python, node).
    pids = docker.docker("top", container.name, "-eo", "pid,uid,comm").stdout.splitlines()[1:]
    assert pids and {line.split()[1] for line in pids} == {"1000"}, pids
    state = container.inspect()
    assert state["Config"]["User"] == "1000:1000"
    assert "/data" in state["Config"]["Volumes"]
    async with asyncio.timeout(90):  # HEALTHCHECK: first probe after 15 s
        while container.inspect()["State"]["Health"]["Status"] != "healthy":
            await asyncio.sleep(1)


def test_without_a_token_the_container_refuses_to_start(
    image: str, docker: DockerDaemon, run_container: Any
) -> None:
    container = run_container(image, name="orch-test-no-token")
    docker.docker("wait", container.name, timeout=120)
    assert container.inspect()["State"]["ExitCode"] == 2
    assert "HTTP needs a bearer token and none is set" in container.logs()
    blank = run_container("-e", "ORCH_HTTP_TOKEN=   ", image, name="orch-test-blank-token")
    docker.docker("wait", blank.name, timeout=120)
    assert blank.inspect()["State"]["ExitCode"] == 2


async def test_runs_survive_a_restart_on_the_data_volume(
    image: str, docker: DockerDaemon, run_container: Any
) -> None:
    port = free_port()
    volume = "orch-test-data"
    docker.docker("volume", "create", volume)
    try:
        container = run_container(
            "-p", f"127.0.0.1:{port}:8765", "-e", f"ORCH_HTTP_TOKEN={TOKEN}",
            "-e", "LLM_PROVIDER=scripted", "-e", "LLM_SCRIPT=/app/examples/scripted-llm.yaml",
            "-v", f"{volume}:/data", image, name="orch-test-volume")
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        await wait_healthz(url)
        async with httpx2.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            run = (await http.post("/runs", json={"goal": "echo test"})).json()
            async with asyncio.timeout(90):
                while (await http.get(f"/runs/{run['id']}")).json()["status"] != "completed":
                    await asyncio.sleep(0.3)
        docker.docker("restart", container.name, timeout=120)
        await wait_healthz(url)
        async with httpx2.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
            again = (await http.get(f"/runs/{run['id']}")).json()
        assert again["status"] == "completed"
        assert "gateway and the run loop work" in again["answer"]
    finally:
        docker.docker("rm", "-f", "orch-test-volume", check=False)
        docker.docker("volume", "rm", volume, check=False)


def test_init_in_the_image_writes_a_config_that_passes_check(
    image: str, docker: DockerDaemon, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    site.chmod(0o777)  # the container's user (1000) writes here
    docker.docker("run", "--rm", "-v", f"{site}:/site", image, "init", "/site",
                  "--provider", "ollama", "--non-interactive")
    assert {p.name for p in site.iterdir()} == {"servers.yaml", "profiles.yaml", ".env"}
    checked = docker.docker(
        "run", "--rm", "--env-file", str(site / ".env"),
        "-v", f"{site}/servers.yaml:/app/servers.yaml:ro",
        "-v", f"{site}/profiles.yaml:/app/profiles.yaml:ro", image, "check", check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "everything" in checked.stdout


def test_runbook_search_works_in_the_slimmed_image(image: str, docker: DockerDaemon) -> None:
    """LanceDB and pyarrow without the parts the Dockerfile leaves out (Flight, S3)."""
    done = docker.docker(
        "run", "--rm", "--entrypoint", "sh", image, "-c",
        "orchestrator-mcp --data-dir /tmp/d index /app/runbooks >/dev/null && "
        "orchestrator-mcp --data-dir /tmp/d search 'disk full' --limit 1", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "disk-full.md" in done.stdout


def test_the_image_is_small_and_holds_no_build_tools_or_build_cas(
    image: str, docker: DockerDaemon
) -> None:
    size = int(docker.docker("image", "inspect", "-f", "{{.Size}}", image).stdout)
    base = int(docker.docker("image", "inspect", "-f", "{{.Size}}",
                             "local/debian:bookworm").stdout)
    print(f"\nimage {size / 1e6:.0f} MB (base {base / 1e6:.0f} MB)")
    assert size - base < 700e6
    found = docker.docker(
        "run", "--rm", "--entrypoint", "sh", image, "-c",
        "command -v gcc cc npm pip strip; ls /usr/local/share/ca-certificates; "
        "ls /root/.cache /root/.npm 2>/dev/null; find / -xdev -name '*.deb' 2>/dev/null; "
        "python3 -c 'import sys; print(sys.version_info[:2])'; node --version",
        check=False).stdout
    lines = found.split()
    assert "(3, 11)" in found and lines[-1].startswith("v")
    assert lines[:-3] == [], found  # no compiler, npm, pip, CA files, caches or packages


# ---- compose ----------------------------------------------------------------------------------

TOOLS_DOCKERFILE = """\
FROM local/debian:bookworm
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \\
        --no-install-recommends prometheus prometheus-alertmanager prometheus-node-exporter \\
        postgresql-15 ca-certificates \\
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \\
 && ln -s /usr/bin/prometheus-alertmanager /usr/local/bin/alertmanager \\
 && ln -s /usr/bin/prometheus-node-exporter /usr/local/bin/node_exporter
COPY postgres-entrypoint.sh /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
"""
# What the official postgres image does with POSTGRES_USER/_DB/_PASSWORD, for this test.
POSTGRES_ENTRYPOINT = """\
#!/bin/sh
set -eu
bin=/usr/lib/postgresql/15/bin
data=/var/lib/postgresql/data
mkdir -p "$data" /run/postgresql
chown postgres "$data" /run/postgresql
if [ ! -s "$data/PG_VERSION" ]; then
  printf '%s' "$POSTGRES_PASSWORD" > /tmp/pw && chown postgres /tmp/pw
  runuser -u postgres -- "$bin/initdb" -D "$data" -U "$POSTGRES_USER" --pwfile=/tmp/pw \\
    --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  rm /tmp/pw
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$data/pg_hba.conf"
  echo "CREATE DATABASE $POSTGRES_DB" | runuser -u postgres -- "$bin/postgres" --single \\
    -D "$data" postgres >/dev/null
fi
exec runuser -u postgres -- "$bin/postgres" -D "$data" -c listen_addresses='*'
"""
STACK = ["orchestrator", "worker", "postgres", "prometheus", "alertmanager", "node-exporter"]


@pytest.fixture(scope="session")
def compose_env(docker: DockerDaemon, image: str,
                tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    context = tmp_path_factory.mktemp("tools")
    (context / "Dockerfile").write_text(TOOLS_DOCKERFILE)
    (context / "postgres-entrypoint.sh").write_text(POSTGRES_ENTRYPOINT)
    (context / "postgres-entrypoint.sh").chmod(0o755)
    started = time.monotonic()
    docker.docker("build", "-t", TOOLS_IMAGE, str(context), timeout=1800)
    print(f"\ntools image built in {time.monotonic() - started:.0f} s")
    return {**docker.env, "ORCHESTRATOR_IMAGE": image, "POSTGRES_IMAGE": TOOLS_IMAGE,
            "PROMETHEUS_IMAGE": TOOLS_IMAGE, "ALERTMANAGER_IMAGE": TOOLS_IMAGE,
            "NODE_EXPORTER_IMAGE": TOOLS_IMAGE, "GRAFANA_IMAGE": "grafana/not-pulled-here",
            "ORCH_PORT": str(free_port()), "PROMETHEUS_PORT": str(free_port()),
            "ALERTMANAGER_PORT": str(free_port())}


def compose(env: dict[str, str], site: Path, *args: str,
            check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["docker-compose", "--env-file", str(site / ".env"), "-f",
         str(REPO / "deploy" / "compose.yaml"), "-p", "orchtest", *args],
        env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"docker-compose {' '.join(args)}: {done.stdout}{done.stderr}")
    return done


async def _wait_query(prometheus: str, expr: str, timeout: float = 120) -> list[Any]:
    async with httpx2.AsyncClient(base_url=prometheus, timeout=10) as http:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                result = (await http.get("/api/v1/query", params={"query": expr})
                          ).json()["data"]["result"]
                if result:
                    return result
            except (httpx2.TransportError, KeyError, ValueError):
                pass
            await asyncio.sleep(1)
    raise AssertionError(f"Prometheus never had {expr}")


async def test_the_compose_stack_runs_end_to_end(compose_env: dict[str, str],
                                                 tmp_path: Path) -> None:
    """init writes the site; compose brings up front + worker on PostgreSQL, Prometheus
    scrapes the front with the token, Alertmanager delivers to the webhook with its token."""
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m",
         "orchestrator_mcp", "init", str(site), "--provider", "scripted",
         "--script", "/app/examples/scripted-llm.yaml", "--non-interactive"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    secrets = dict(line.split("=", 1) for line in (site / ".env").read_text().splitlines()
                   if line and not line.startswith("#"))
    env = compose_env
    config = compose(env, site, "config")  # the whole file, Grafana included, is valid
    assert "grafana" in config.stdout and secrets["POSTGRES_PASSWORD"] in config.stdout
    try:
        started = time.monotonic()
        compose(env, site, "up", "-d", *STACK, timeout=900)
        front = f"http://127.0.0.1:{env['ORCH_PORT']}"
        prometheus = f"http://127.0.0.1:{env['PROMETHEUS_PORT']}"
        alertmanager = f"http://127.0.0.1:{env['ALERTMANAGER_PORT']}"
        await wait_healthz(front, timeout=180)
        print(f"\nstack up in {time.monotonic() - started:.0f} s")
        headers = {"Authorization": f"Bearer {secrets['ORCH_HTTP_TOKEN']}"}
        async with httpx2.AsyncClient(base_url=front, headers=headers, timeout=30) as http:
            async with asyncio.timeout(120):
                while (ready := await http.get("/readyz")).status_code != 200:
                    await asyncio.sleep(1)
            assert ready.json()["database"] == "ok"
            # the front only accepts (--no-execute): the worker executes, via PostgreSQL
            run = (await http.post("/runs", json={"goal": "echo test"})).json()
            async with asyncio.timeout(120):
                while (await http.get(f"/runs/{run['id']}")).json()["status"] != "completed":
                    await asyncio.sleep(0.5)

        await _wait_query(prometheus, 'up{job="orchestrator"} == 1')
        await _wait_query(prometheus, 'up{job="orchestrator-worker"} == 1')
        await _wait_query(prometheus, 'up{job="node"} == 1')
        await _wait_query(prometheus, "node_filesystem_avail_bytes")
        live = await _wait_query(prometheus, "orchestrator_executors_live >= 1")
        assert float(live[0]["value"][1]) >= 1
        # one executor, the worker (not the front), idle now; front and worker both say so
        executing = await _wait_query(prometheus, "orchestrator_runs_executing")
        executors = {sample["metric"]["executor"] for sample in executing}
        assert len(executors) == 1 and executors != {"local"}
        assert {sample["metric"]["job"] for sample in executing} == {
            "orchestrator", "orchestrator-worker"}
        # counted by the worker that executed the run, scraped on its --metrics-port
        await _wait_query(prometheus, 'orchestrator_runs_total{job="orchestrator-worker", '
                          'status="completed"}')

        # Alertmanager → the orchestrator's webhook, with the alert token from .env
        alert = [{"labels": {"alertname": "ComposeTestAlert", "instance": "web-1",
                             "severity": "warning"},
                  "annotations": {"summary": "a test alert"}}]
        async with httpx2.AsyncClient(base_url=alertmanager, timeout=10) as http:
            async with asyncio.timeout(60):
                while True:
                    try:
                        if (await http.post("/api/v2/alerts", json=alert)).status_code == 200:
                            break
                    except httpx2.TransportError:
                        pass
                    await asyncio.sleep(1)
        async with httpx2.AsyncClient(base_url=front, headers=headers, timeout=30) as http:
            async with asyncio.timeout(120):
                while not [r for r in (await http.get("/runs")).json()["runs"]
                           if r["source"] == "alertmanager"]:
                    await asyncio.sleep(1)
        rejected = await _wait_query(
            prometheus, "sum(orchestrator_alert_rejected_requests_total) or vector(0)")
        assert float(rejected[0]["value"][1]) == 0
    except BaseException:
        print(compose(env, site, "logs", "--tail", "60", check=False).stdout[-20000:])
        raise
    finally:
        compose(env, site, "down", "-v", "--remove-orphans", check=False, timeout=300)

