"""Schedules end to end: `orchestrator-mcp serve` / `worker` processes with DBOS's scheduler
on SQLite and on a real PostgreSQL shared by two workers, the real openai client against
the local fake model, a real downstream MCP server; kill -9 mid-run."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator_mcp.config import ConfigError, load_config
from tests import postgres
from tests.conftest import write_config
from tests.fake_openai import FakeOpenAI
from tests.test_runs import server, until

EVERY_SECOND = "* * * * * *"


def _profiles(schedules: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"profiles": {"default": {"role": "Test planner."},
                         "ops": {"servers": ["counter"],
                                 "approval": {"auto_approve": ["counter_bump"]}}},
            "schedules": schedules, **extra}


@pytest.fixture
def setup(tmp_path: Path, counter_stdio_cfg: dict) -> dict[str, Path]:
    config = write_config(tmp_path / "config", {"counter": counter_stdio_cfg},
                          knowledge={"enabled": False})
    return {"config": config, "data": tmp_path / "data",
            "counts": Path(counter_stdio_cfg["args"][2])}


def write_schedules(setup: dict[str, Path], schedules: dict[str, Any], **extra: Any) -> None:
    (setup["config"] / "profiles.yaml").write_text(yaml.safe_dump(_profiles(schedules,
                                                                            **extra)))


def stamp_seconds(run_id: str) -> float:
    """The tick time a schedule's run id carries (`sch_<name>.<YYYYmmddTHHMMSSZ>`)."""
    stamp = run_id.rsplit(".", 1)[1]
    return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()


async def schedule_runs(client: Any, name: str) -> list[dict[str, Any]]:
    runs = (await client.call_tool("list_runs", {"limit": 200})).structured_content["result"]
    return sorted((r for r in runs if r["run_id"].startswith(f"sch_{name}.")),
                  key=lambda r: r["run_id"])


async def runs_of(client: Any, name: str, count: int, timeout: float = 90
                  ) -> list[dict[str, Any]]:
    """The schedule's runs once `count` of them exist."""
    async with asyncio.timeout(timeout):
        while len(runs := await schedule_runs(client, name)) < count:
            await asyncio.sleep(0.2)
    return runs


# ---- configuration -------------------------------------------------------------------


def problems(tmp_path: Path, profiles: dict[str, Any]) -> list[str]:
    (tmp_path / "profiles.yaml").write_text(yaml.safe_dump(profiles))
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    return caught.value.problems


@pytest.mark.parametrize(("schedule", "expected"), [
    ({"cron": "61 * * * *", "goal": "g"}, "schedules.s.cron: cron '61 * * * *' is not a valid"),
    ({"cron": "* * *", "goal": "g"}, "give 5 fields"),
    ({"cron": "* * * * * * *", "goal": "g"}, "is not a valid cron expression"),
    ({"cron": "0 2 * * *", "timezone": "Mars/Olympus", "goal": "g"},
     "time zone 'Mars/Olympus' does not exist"),
    ({"cron": "0 2 * * *"}, "give exactly one of 'template', 'workflow' or 'goal'"),
    ({"cron": "0 2 * * *", "goal": "g", "template": "t"}, "got template, goal"),
    ({"cron": "0 2 * * *", "template": "nope"}, "schedules.s.template: unknown template 'nope'"),
    ({"cron": "0 2 * * *", "workflow": "nope"}, "schedules.s.workflow: unknown workflow"),
    ({"cron": "0 2 * * *", "goal": "g", "profile": "nope"}, "unknown profile 'nope'"),
    ({"cron": "0 2 * * *", "template": "t", "inputs": {"hots": "a"}},
     "schedules.s.inputs: unknown parameter(s) hots; the template takes: host"),
    ({"cron": "0 2 * * *", "template": "t", "inputs": {"host": 5}},
     "parameter 'host' must be a string, not int"),
    ({"cron": "0 2 * * *", "template": "t", "profile": "ops"}, "'profile' is for goal"),
    ({"cron": "0 2 * * *", "goal": "g", "overlap": "queue"}, "schedules.s.overlap"),
])
def test_check_explains_bad_schedules(tmp_path: Path, schedule: dict[str, Any],
                                      expected: str) -> None:
    found = problems(tmp_path, {
        "templates": {"t": {"goal": "check {{ host }}",
                            "parameters": {"host": {"type": "string", "required": True}}}},
        "schedules": {"s": schedule}})
    assert any(expected in p for p in found), found


def test_check_command_fails_on_a_bad_schedule(tmp_path: Path) -> None:
    (tmp_path / "profiles.yaml").write_text(yaml.safe_dump(
        {"schedules": {"s": {"cron": "every day", "goal": "g"}}}))
    done = subprocess.run([sys.executable, "-m", "orchestrator_mcp", "--config-dir",
                           str(tmp_path), "--data-dir", str(tmp_path / "data"), "check"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "schedules.s.cron: cron 'every day' is not a valid cron expression" in done.stderr


def test_fire_times_follow_the_time_zone(tmp_path: Path) -> None:
    (tmp_path / "profiles.yaml").write_text(yaml.safe_dump({"schedules": {"s": {
        "cron": "0 7 * * *", "timezone": "Europe/Paris", "goal": "g"}}}))
    schedule = load_config(tmp_path).profiles.schedules["s"]
    winter = datetime(2026, 12, 2, 12, tzinfo=UTC)
    fires = schedule.ticks_after(winter, 2)
    assert [f.isoformat() for f in fires] == ["2026-12-03T07:00:00+01:00",
                                              "2026-12-04T07:00:00+01:00"]
    assert fires[0].astimezone(UTC).hour == 6


# ---- one process on SQLite ---------------------------------------------------------------


async def test_per_second_schedule_starts_one_run_per_tick(setup, llm: FakeOpenAI) -> None:
    write_schedules(setup, {"tick": {"cron": EVERY_SECOND, "goal": "say hi",
                                     "inputs": {"team": "sre"}, "overlap": "allow"}})
    async with server(setup, llm) as client:
        runs = await runs_of(client, "tick", 4)
        views = (await client.call_tool("list_schedules", {})).structured_content["result"]
        os.kill(_server_pid(setup), signal.SIGKILL)
        killed_at = time.time()
    ticks = [stamp_seconds(r["run_id"]) for r in runs]
    assert ticks == sorted(set(ticks)), "one run per tick"
    assert all(b - a == 1 for a, b in zip(ticks, ticks[1:], strict=False)), ticks
    assert all(r["status"] == "completed" for r in runs[:-2])
    view = views[0]
    assert view["name"] == "tick" and view["target"] == "goal" and view["enabled"]
    assert len(view["next_fires"]) == 3
    assert view["last_run"]["run_id"].startswith("sch_tick.")

    write_schedules(setup, {})  # removed: the next executor deletes its DBOS schedule
    async with server(setup, llm) as client:
        record = (await client.call_tool("get_run", {"run_id": runs[0]["run_id"]})
                  ).structured_content
        await asyncio.sleep(3)
        after = await schedule_runs(client, "tick")
        views = (await client.call_tool("list_schedules", {})).structured_content["result"]
    assert record["source"] == "schedule" and record["context"] == {"team": "sre"}
    assert max(stamp_seconds(r["run_id"]) for r in after) <= killed_at, \
        "a removed schedule stopped firing"
    assert views == []


async def test_overlap_skip_never_runs_two_at_once(setup, llm: FakeOpenAI) -> None:
    write_schedules(setup, {"slow": {"cron": EVERY_SECOND, "goal": "SLEEP 2.5\nslowly"}})
    async with server(setup, llm) as client:
        runs = await runs_of(client, "slow", 3)
        records = [(await client.call_tool("get_run", {"run_id": r["run_id"]}))
                   .structured_content for r in runs]
    ticks = [stamp_seconds(r["run_id"]) for r in runs]
    assert all(b - a >= 2 for a, b in zip(ticks, ticks[1:], strict=False)), \
        f"ticks during a run were skipped: {ticks}"
    for earlier, later in zip(records, records[1:], strict=False):
        assert earlier["finished_at"] is not None
        assert later["created_at"] >= earlier["finished_at"] - 0.05, "runs overlapped"


async def test_a_run_recorded_but_never_queued_does_not_hold_the_schedule(
        setup, llm: FakeOpenAI) -> None:
    """A tick stopped between recording its run and queueing it (a shutdown) leaves a
    `queued` run no executor will take; `overlap: skip` must not wait for it forever."""
    write_schedules(setup, {})
    async with server(setup, llm) as client:  # a first call creates the tables
        await client.call_tool("list_runs", {})
    orphan = "sch_beat.20200101T000000Z"
    with sqlite3.connect(setup["data"] / "runs.sqlite") as db:
        db.execute("INSERT INTO orch_runs (id, goal, profile, status, source, context, "
                   "created_at, updated_at, usage, seq) VALUES (?, 'beat', 'default', "
                   "'queued', 'schedule', '{}', 1, 1, '{}', 1)", (orphan,))
    write_schedules(setup, {"beat": {"cron": EVERY_SECOND, "goal": "beat"}})
    async with server(setup, llm) as client:
        runs = await runs_of(client, "beat", 3)
    assert runs[0]["run_id"] == orphan and runs[0]["status"] == "queued"
    assert {r["status"] for r in runs[1:-1]} == {"completed"}


async def test_overlap_allow_runs_them_side_by_side(setup, llm: FakeOpenAI) -> None:
    write_schedules(setup, {"slow": {"cron": EVERY_SECOND, "goal": "SLEEP 2.5\nslowly",
                                     "overlap": "allow"}})
    async with server(setup, llm) as client:
        runs = await runs_of(client, "slow", 3)
    running_at_once = [r for r in runs if r["status"] in ("queued", "running")]
    assert len(running_at_once) >= 2, runs


def _server_pid(setup: dict[str, Path]) -> int:
    return int((setup["data"] / "executor.lock").read_text().strip())


async def test_kill_9_during_a_scheduled_run_resumes_it(setup, llm: FakeOpenAI) -> None:
    """The run a tick started survives a kill -9 of the only process: the next start
    resumes it where it was (its completed tool call is not repeated) and the tick does
    not start a second run."""
    plan = "CALL counter_bump {}\nSLEEP 0\nSLEEP 4\nscheduled bump"
    write_schedules(setup, {"bump": {"cron": "*/30 * * * * *", "goal": plan,
                                     "profile": "ops"}})
    async with server(setup, llm) as client:
        async with asyncio.timeout(45):
            while not (runs := await schedule_runs(client, "bump")) or \
                    "bump" not in setup["counts"].read_text():
                await asyncio.sleep(0.1)
        run_id = runs[0]["run_id"]
        os.kill(_server_pid(setup), signal.SIGKILL)
    assert setup["counts"].read_text().splitlines().count("bump") == 1
    write_schedules(setup, {"bump": {"cron": "0 0 1 1 *", "goal": plan, "profile": "ops"}})
    async with server(setup, llm) as client:
        record = await until(client, run_id, "completed", "failed", timeout=60)
        runs = await schedule_runs(client, "bump")
    assert record["status"] == "completed", record
    assert [r["run_id"] for r in runs] == [run_id]
    assert setup["counts"].read_text().splitlines().count("bump") == 1


async def test_missed_tick_runs_once_at_start(setup, llm: FakeOpenAI) -> None:
    """`missed: run_once`: ticks missed while no process ran start one run (the latest)
    at the next start; `missed: skip` starts none."""
    schedules = {"caught": {"cron": "*/5 * * * * *", "goal": "catch up",
                            "missed": "run_once"},
                 "skipped": {"cron": "*/5 * * * * *", "goal": "skip it"}}
    write_schedules(setup, schedules)
    async with server(setup, llm) as client:
        async with asyncio.timeout(30):
            while len(await schedule_runs(client, "caught")) < 1 or \
                    len(await schedule_runs(client, "skipped")) < 1:
                await asyncio.sleep(0.2)
        await asyncio.sleep(1)
        before = [*await schedule_runs(client, "caught"),
                  *await schedule_runs(client, "skipped")]
        cutoff = max(stamp_seconds(r["run_id"]) for r in before)
        os.kill(_server_pid(setup), signal.SIGKILL)  # every process is down
    await asyncio.sleep(11)  # two ticks of each pass while nothing runs
    async with server(setup, llm) as client:
        async with asyncio.timeout(30):  # until the restarted scheduler fired a tick
            while not [r for r in await schedule_runs(client, "skipped")
                       if stamp_seconds(r["run_id"]) > cutoff]:
                await asyncio.sleep(0.2)
        caught = {stamp_seconds(r["run_id"]) for r in await schedule_runs(client, "caught")}
        skipped = {stamp_seconds(r["run_id"]) for r in await schedule_runs(client, "skipped")}
    caught = {t for t in caught if t > cutoff}
    skipped = {t for t in skipped if t > cutoff}
    extra = caught - skipped
    assert len(extra) == 1, (sorted(caught), sorted(skipped))
    assert extra.pop() < min(skipped), "the missed tick is older than the live ones"


# ---- two workers on PostgreSQL -----------------------------------------------------------


@pytest.mark.skipif(postgres.bin_dir() is None,
                    reason="PostgreSQL is not installed (.ci/run installs it)")
async def test_two_workers_start_one_run_per_tick(tmp_path: Path, llm: FakeOpenAI,
                                                  counter_stdio_cfg: dict) -> None:
    from tests.test_scale import Cluster

    with postgres.cluster() as pg_url:
        cluster = Cluster(tmp_path, postgres.create_database(pg_url), llm, counter_stdio_cfg)
        (cluster.config / "profiles.yaml").write_text(yaml.safe_dump(_profiles({
            "beat": {"cron": EVERY_SECOND, "goal": "CALL counter_bump {}\nbeat",
                     "profile": "ops", "overlap": "allow"}})))
        try:
            cluster.start_worker("w1")
            cluster.start_worker("w2")
            deadline = time.time() + 60
            while cluster.live_workers() < 2 and time.time() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(8)
            first_half = _ticks(cluster)
            tick_executors = {row[0] for row in cluster.query(
                "SELECT executor_id FROM dbos.workflow_status "
                "WHERE workflow_uuid LIKE 'sched-orch:beat-%'")}
            cluster.processes["w1"].send_signal(signal.SIGKILL)
            await asyncio.sleep(6)
            ticks = _ticks(cluster)
            await asyncio.sleep(3)
            runs = cluster.query("SELECT id, status FROM orch_runs WHERE id LIKE 'sch_beat.%'")
        finally:
            cluster.stop()
    stamps = sorted(stamp_seconds(run_id) for run_id, _ in runs)
    assert len(stamps) >= 10
    assert stamps == sorted(set(stamps))
    # every tick in the window started a run, even after one worker was killed
    assert all(b - a == 1 for a, b in zip(stamps, stamps[1:], strict=False)), stamps
    assert len(tick_executors - {None}) == 2, "both workers executed ticks"
    # the tick workflows DBOS made: exactly one per fire time, each with one child run
    assert len(ticks) == len(set(ticks)) >= len(first_half)
    # each run's tool call ran once: one bump per completed run
    completed = sum(1 for _, status in runs if status == "completed")
    assert completed <= cluster.bumps() <= len(runs)


def _ticks(cluster: Any) -> list[str]:
    rows = cluster.query("SELECT workflow_uuid FROM dbos.workflow_status "
                         "WHERE workflow_uuid LIKE 'sched-orch:beat-%'")
    return [r[0] for r in rows]


def test_cli_lists_schedules(setup) -> None:
    write_schedules(setup, {"nightly": {"cron": "0 2 * * *", "timezone": "Europe/Paris",
                                        "goal": "check disks"},
                            "off": {"cron": "0 3 * * *", "goal": "x", "enabled": False}})
    done = subprocess.run([sys.executable, "-m", "orchestrator_mcp", "--config-dir",
                           str(setup["config"]), "--data-dir", str(setup["data"]),
                           "schedules"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["SCHEDULE", "CRON", "TARGET", "NEXT", "LAST", "RUN"]
    assert "nightly" in lines[1] and "0 2 * * * (Europe/Paris)" in lines[1]
    assert re.search(r"T02:00:00\+0[12]:00", lines[1]) and lines[1].rstrip().endswith("-")
    assert "off" in lines[2] and "disabled" in lines[2]
