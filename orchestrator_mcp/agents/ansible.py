"""The ansible agent: list, check (--check --diff) and run the playbooks of one folder.

ansible-runner is an optional extra, imported only inside the tools. Each run keeps its own
private data dir (events, stdout, extra vars) under `agents.ansible.artifacts_dir` (default
<data dir>/ansible-artifacts). `list_playbooks` reads a playbook's leading comment block:
`# description: ...` (continued on indented lines), then `# vars:` and one
`#   name [(required)]: what it is` line per variable (defaults come from the play's `vars:`).
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from orchestrator_mcp.agents.ansible_settings import AnsibleAgentSettings

LISTING = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
# Check mode changes nothing on the hosts, but it does reach the inventory's hosts.
CHECK = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                        open_world_hint=True)
APPLY = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=False,
                        open_world_hint=True)

RUNNER_MISSING = "ansible-runner is not installed — install orchestrator-mcp[ansible]"
_PLAYBOOK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_LIMIT = re.compile(r"^[A-Za-z0-9._:*,!&-]{1,500}$")
_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_HOST = re.compile(r"^[A-Za-z0-9._:\[\]-]{1,253}$")
_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# Variables that steer ansible itself (connection, interpreter, privilege) or are magic.
_RESERVED_VARS = frozenset("hostvars groups group_names inventory_hostname inventory_dir "
                           "inventory_file omit play_hosts playbook_dir vars environment".split())
MAX_EXTRA_VARS_BYTES = 64 * 1024

Scalar = str | int | float | bool | None
PlaybookName = Annotated[str, Field(max_length=128, description=(
    "a playbook's name from list_playbooks, e.g. 'clean-old-files'"))]
Limit = Annotated[str | None, Field(description="host pattern narrowing the inventory")]
ExtraVars = Annotated[dict[str, Scalar | list[Scalar]] | None, Field(
    description="the playbook's variables (see list_playbooks), e.g. {'target_dir': '/x'}")]


class PlaybookVar(BaseModel):
    name: str
    description: str = ""
    required: bool = False
    default: Any = None


class PlaybookInfo(BaseModel):
    name: str = Field(description="what to pass as `playbook`")
    file: str
    description: str
    variables: list[PlaybookVar]
    error: str | None = Field(default=None, description="why the file could not be read")


_VAR_DOC = re.compile(r"^#\s+([A-Za-z_][A-Za-z0-9_]*)\s*(\(required\))?\s*:\s*(.*)$")


def describe_playbook(path: Path) -> PlaybookInfo:
    """Description and variables from the leading comment block and the first play."""
    text = path.read_text(encoding="utf-8", errors="replace")
    description: list[str] = []
    documented: list[PlaybookVar] = []
    section = ""
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        body = line[1:].strip()
        if body.lower().startswith("description:"):
            section = "description"
            description.append(body.split(":", 1)[1].strip())
        elif body.lower() == "vars:":
            section = "vars"
        elif section == "vars" and (match := _VAR_DOC.match(line)):
            documented.append(PlaybookVar(name=match[1], required=bool(match[2]),
                                          description=match[3].strip()))
        elif section == "vars" and documented and body:
            documented[-1].description += " " + body
        elif section == "description" and body:
            description.append(body)
    info = PlaybookInfo(name=path.stem, file=path.name, description=" ".join(description),
                        variables=documented)
    try:
        plays = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return info.model_copy(update={"error": f"not valid YAML: {exc}"})
    first = plays[0] if isinstance(plays, list) and plays and isinstance(plays[0], dict) else {}
    play_vars = first.get("vars") if isinstance(first.get("vars"), dict) else {}
    if not info.description:
        info.description = str(first.get("name") or "")
    if not documented:
        info.variables = [PlaybookVar(name=str(k)) for k in play_vars]
    for var in info.variables:
        var.default = play_vars.get(var.name)
    return info


class HostStats(BaseModel):
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


class TaskOutcome(BaseModel):
    host: str
    task: str
    status: Literal["ok", "changed", "failed", "unreachable", "skipped"]
    message: str | None = None
    changed_items: list[str] = Field(default_factory=list)
    diff: str = ""


class PlaybookResult(BaseModel):
    playbook: str
    mode: Literal["check", "run"] = Field(description="check: nothing was changed")
    status: str = Field(description="successful, failed, timeout or canceled")
    succeeded: bool
    return_code: int | None
    hosts: dict[str, HostStats]
    failures: list[str] = Field(description="'[host] task: message' for each failed task")
    diff: str = Field(description="summary of the changed tasks, then each task's diff")
    tasks: list[TaskOutcome]
    artifacts_dir: str = Field(description="this run's private data dir and artifacts")
    seconds: float


_TASK_EVENTS = frozenset({"runner_on_ok", "runner_on_failed", "runner_on_skipped",
                          "runner_on_unreachable"})
_STATS = {"ok": "ok", "changed": "changed", "failures": "failed", "dark": "unreachable",
          "skipped": "skipped", "rescued": "rescued", "ignored": "ignored"}
MAX_DIFF_CHARS = 100_000


def format_diff(diff: Any) -> str:
    """Ansible's diff dicts (before/after text or dicts, or `prepared`) as unified diffs."""
    parts = []
    for one in diff if isinstance(diff, list) else [diff]:
        if not isinstance(one, dict):
            continue
        if one.get("prepared"):
            parts.append(str(one["prepared"]).rstrip("\n"))
            continue
        texts = [v if isinstance(v := one.get(side, ""), str) else json.dumps(
            v, indent=4, sort_keys=True, default=str) + "\n" for side in ("before", "after")]
        headers = [f"{side}: {one[side + '_header']}" if one.get(side + "_header") else side
                   for side in ("before", "after")]
        parts.append("".join(difflib.unified_diff(
            texts[0].splitlines(True), texts[1].splitlines(True), *headers)).rstrip("\n"))
    return "\n".join(p for p in parts if p)


def _outcome(event: dict[str, Any]) -> TaskOutcome:
    data = event.get("event_data", {})
    res = data.get("res") if isinstance(data.get("res"), dict) else {}
    status = event["event"].removeprefix("runner_on_")
    if status == "ok" and res.get("changed"):
        status = "changed"
    items = [r for r in res.get("results", []) if isinstance(r, dict)]
    changed = [str(r.get("_ansible_item_label", r.get("item"))) for r in items
               if r.get("changed")]
    diffs = [format_diff(r["diff"]) for r in [res, *items] if r.get("diff")]
    message = res.get("msg") or res.get("stderr") or None
    # A loop's own msg is only "All items completed": its items' messages say more.
    if item_messages := [f"{r.get('_ansible_item_label', r.get('item'))}: {r['msg']}"
                         for r in items if r.get("msg")]:
        message = "; ".join(item_messages)
    if isinstance(message, list):  # debug with a list of lines
        message = "\n".join(str(m) for m in message)
    return TaskOutcome(host=str(data.get("host")), task=str(data.get("task")), status=status,
                       message=str(message)[:2000] if message else None,
                       changed_items=changed, diff="\n".join(d for d in diffs if d))


def summarize(*, playbook: str, mode: Literal["check", "run"], status: str, rc: int | None,
              stats: dict[str, Any], events: list[dict[str, Any]], artifacts_dir: str,
              seconds: float) -> PlaybookResult:
    hosts: dict[str, HostStats] = {}
    for key, field in _STATS.items():
        for host, count in (stats.get(key) or {}).items():
            setattr(hosts.setdefault(host, HostStats()), field, count)
    tasks = [_outcome(e) for e in events if e.get("event") in _TASK_EVENTS]
    changed = [t for t in tasks if t.status == "changed"]
    failures = [f"[{t.host}] {t.task}: {t.message}" for t in tasks
                if t.status in ("failed", "unreachable")]
    verb = "would change" if mode == "check" else "changed"
    lines = [f"{playbook} ({'check mode: nothing was changed' if mode == 'check' else 'applied'})"
             f" — {status}"]
    lines += [f"{host}: " + " ".join(f"{k}={v}" for k, v in s.model_dump().items())
              for host, s in hosts.items()]
    lines.append(f"{len(changed)} task(s) {verb}" + (":" if changed else ""))
    lines += [f"  [{t.host}] {t.task}" + (f": {', '.join(t.changed_items)}"
                                            if t.changed_items else "") for t in changed]
    lines += [f"FAILED {f}" for f in failures]
    lines += [f"\n=== [{t.host}] {t.task}\n{t.diff}" for t in changed if t.diff]
    diff = "\n".join(lines)
    if len(diff) > MAX_DIFF_CHARS:
        diff = diff[:MAX_DIFF_CHARS] + f"\n... (cut; the full output is in {artifacts_dir})"
    return PlaybookResult(playbook=playbook, mode=mode, status=status,
                          succeeded=status == "successful" and rc == 0, return_code=rc,
                          hosts=hosts, failures=failures, diff=diff, tasks=tasks[:500],
                          artifacts_dir=artifacts_dir, seconds=seconds)


def resolve_playbook(directory: Path, name: str) -> Path:
    """The file `name` (with or without .yml/.yaml) directly inside `directory`."""
    if not _PLAYBOOK_NAME.match(name) or ".." in name:
        raise ToolError(f"{name!r} is not a playbook name — give the file name only, without "
                        "a folder (e.g. 'clean-old-files'); see list_playbooks")
    root = directory.resolve()
    candidates = [name] if name.endswith((".yml", ".yaml")) else [f"{name}.yml", f"{name}.yaml"]
    for candidate in candidates:
        path = (root / candidate).resolve()
        if path.parent == root and path.is_file():
            return path
    raise ToolError(f"there is no playbook {name!r} in {root} — see list_playbooks")


def check_inputs(limit: str | None, extra_vars: dict[str, Any]) -> None:
    if limit is not None and (not _LIMIT.match(limit) or limit.startswith("-")):
        raise ToolError(f"limit {limit!r} is not a host pattern — use host or group names "
                        "with letters, digits and . _ - : * , ! & (no leading '-')")
    for key, value in extra_vars.items():
        if not _VAR_NAME.match(key):
            raise ToolError(f"extra_vars key {key!r} is not a variable name — use letters, "
                            "digits and '_', not starting with a digit")
        if key.startswith("ansible_") or key in _RESERVED_VARS:
            raise ToolError(f"extra_vars key {key!r} is reserved (it steers ansible itself); "
                            "pass only the playbook's own variables (see list_playbooks)")
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and any(m in item for m in ("{{", "{%", "{#")):
                raise ToolError(f"extra_vars {key!r}: templates ({{{{ }}}}, {{% %}}) are not "
                                "allowed in values")
    size = len(json.dumps(extra_vars))
    if size > MAX_EXTRA_VARS_BYTES:
        raise ToolError(f"extra_vars are {size} bytes as JSON; the limit is "
                        f"{MAX_EXTRA_VARS_BYTES}")


def write_inventory(inventory: str, run_dir: Path) -> str:
    """An inventory path for the runner: a host list ("a,b,") becomes a YAML file in the run
    dir, where localhost gets the local connection and this Python."""
    raw = inventory.strip()
    if "," not in raw:
        path = Path(raw).expanduser()
        if not path.exists():
            raise ToolError(f"inventory {raw!r} is neither an existing file nor a host list "
                            "like 'localhost,' — fix agents.ansible.inventory in servers.yaml")
        return str(path.resolve())
    hosts = [h.strip() for h in raw.split(",") if h.strip()]
    if bad := [h for h in hosts if not _HOST.match(h)]:
        raise ToolError(f"inventory host {bad[0]!r} is not a host name")
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    path = run_dir / "inventory.yml"
    path.write_text(json.dumps({"all": {"hosts": {
        h: local if h in _LOCAL_HOSTS else {} for h in hosts}}}, indent=2))
    return str(path)


def runner_env(run_dir: Path) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    if not (Path(bin_dir) / "ansible-playbook").exists() and not shutil.which("ansible-playbook"):
        raise ToolError("ansible-playbook is not available on this host — install "
                        "orchestrator-mcp[ansible]")
    env = {"PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_HOST_KEY_CHECKING": "False",
           "ANSIBLE_RETRY_FILES_ENABLED": "False", "ANSIBLE_LOCAL_TEMP": str(run_dir / "tmp")}
    locale = (os.environ.get("LC_ALL") or os.environ.get("LANG") or "").lower()
    if "utf-8" not in locale and "utf8" not in locale:  # ansible refuses other encodings
        env["LC_ALL"] = "C.UTF-8"
    return env


async def run_playbook(settings: AnsibleAgentSettings, ctx: Context | None, playbook: str,
                       mode: Literal["check", "run"], limit: str | None,
                       extra_vars: dict[str, Any]) -> PlaybookResult:
    path = resolve_playbook(settings.playbooks_dir, playbook)
    check_inputs(limit, extra_vars)
    try:
        import ansible_runner
    except ImportError:
        raise ToolError(RUNNER_MISSING) from None
    root = settings.artifacts_dir or Path(tempfile.gettempdir()) / "orchestrator-mcp-ansible"
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    run_dir = root / f"{stamp}-{path.stem}-{mode}-{uuid.uuid4().hex[:8]}"
    run_dir.mkdir(mode=0o700, parents=True)
    inventory = write_inventory(settings.inventory, run_dir)
    envvars = runner_env(run_dir)

    loop = asyncio.get_running_loop()
    events: list[dict[str, Any]] = []
    pending: list[Any] = []
    cancelled = threading.Event()

    def on_event(event: dict[str, Any]) -> bool:  # called in the runner's thread
        events.append(event)
        if ctx is not None and event.get("event") in _TASK_EVENTS:
            task = _outcome(event)
            message = f"[{task.host}] {task.task}: {task.status}"
            done = sum(1 for e in events if e.get("event") in _TASK_EVENTS)
            pending.append(asyncio.run_coroutine_threadsafe(
                ctx.report_progress(done, None, message), loop))
        return True

    def execute() -> Any:
        return ansible_runner.run(
            private_data_dir=str(run_dir), playbook=str(path), inventory=inventory,
            limit=limit, extravars=extra_vars or None, envvars=envvars, quiet=True,
            cmdline="--check --diff" if mode == "check" else "--diff",
            timeout=max(1, int(settings.timeout)), event_handler=on_event,
            cancel_callback=cancelled.is_set, ident="run")

    started = time.monotonic()
    try:
        runner = await asyncio.to_thread(execute)
    except asyncio.CancelledError:
        cancelled.set()
        raise
    except Exception as exc:  # the runner's configuration errors carry the useful message
        raise ToolError(f"ansible-runner could not start {path.name}: {exc}") from None
    # Progress is best effort (the client may have gone); sent before the answer.
    await asyncio.gather(*(asyncio.wrap_future(f) for f in pending), return_exceptions=True)
    result = summarize(playbook=path.name, mode=mode, status=runner.status, rc=runner.rc,
                       stats=runner.stats or {}, events=events, artifacts_dir=str(run_dir),
                       seconds=round(time.monotonic() - started, 2))
    if not result.succeeded and not result.failures:  # e.g. a syntax error, a timeout
        stdout = run_dir / "artifacts" / "run" / "stdout"
        tail = stdout.read_text(errors="replace")[-2000:].strip() if stdout.exists() else ""
        limit_note = f" after {settings.timeout} s" if runner.status == "timeout" else ""
        result.failures.append(f"ansible-playbook {runner.status}{limit_note} "
                               f"(rc={runner.rc}): {tail}")
        result.diff += f"\nFAILED {result.failures[0]}"
    return result


def build(settings: AnsibleAgentSettings) -> FastMCP:
    mcp = FastMCP("ansible", instructions=(
        "Ansible playbooks from one folder: list them, check them (dry run with diff), run "
        "them. Check first: the check's diff is what an approver sees."))

    @mcp.tool(annotations=LISTING)
    async def list_playbooks() -> list[PlaybookInfo]:
        """The playbooks that can be checked or run, with description and variables."""
        folder = settings.playbooks_dir
        if not folder.is_dir():
            raise ToolError(f"the playbooks folder {folder} does not exist — create it or fix "
                            "agents.ansible.playbooks_dir in servers.yaml")
        files = sorted(p for p in folder.iterdir() if p.suffix in (".yml", ".yaml"))
        return [await asyncio.to_thread(describe_playbook, p) for p in files if p.is_file()]

    @mcp.tool(annotations=CHECK)
    async def check(ctx: Context, playbook: PlaybookName, limit: Limit = None,
                    extra_vars: ExtraVars = None) -> PlaybookResult:
        """Dry-run a playbook (--check --diff): what each task would change, per host.
        Nothing is changed on the hosts."""
        return await run_playbook(settings, ctx, playbook, "check", limit, extra_vars or {})

    @mcp.tool(annotations=APPLY)
    async def run(ctx: Context, playbook: PlaybookName, limit: Limit = None,
                  extra_vars: ExtraVars = None) -> PlaybookResult:
        """Apply a playbook to the inventory's hosts (changes them). Run `check` first."""
        return await run_playbook(settings, ctx, playbook, "run", limit, extra_vars or {})

    return mcp
