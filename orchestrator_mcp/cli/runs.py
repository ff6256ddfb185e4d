"""`run`, `runs list|show`, `approve`, `cancel`: goal runs from a terminal.

`run` executes in this process when no server holds the data dir; otherwise it submits to
the server that does and follows the run from the shared tables. The other commands never
execute runs: they read the table and send decisions through DBOS's system database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from typing import Any

from orchestrator_mcp.auth import local_id
from orchestrator_mcp.cli.common import EXIT_OK, EXIT_UNHEALTHY, load, table
from orchestrator_mcp.cli.common import engine_call as _engine_call
from orchestrator_mcp.runs.models import RunRecord, RunStatus, StepRecord


def add_parsers(commands: Any) -> None:
    run_parser = commands.add_parser(
        "run", help="run a goal with live progress and inline approvals",
        description="Start a goal-based run and follow it: every model call, tool call and "
        "result is printed as it happens; a call that needs approval is asked here "
        "(approve, reject, or edit its arguments). Exit code 0 when the run completed.",
    )
    run_parser.add_argument("goal", help="what the run should achieve")
    run_parser.add_argument("--profile", default="default", help="agent profile (default)")
    run_parser.add_argument("--context", type=_json_object, default=None, metavar="JSON",
                            help="extra facts for the planner, as a JSON object")
    run_parser.add_argument("--detach", action="store_true",
                            help="print the run id and return at once (needs a running server)")
    run_parser.set_defaults(func=run)

    runs_parser = commands.add_parser("runs", help="list runs or show one",
                                      description="List runs (newest first) or show one run.")
    runs_commands = runs_parser.add_subparsers(dest="runs_command", metavar="SUBCOMMAND")
    list_parser = runs_commands.add_parser("list", help="list runs")
    list_parser.add_argument("--status", choices=[s.value for s in RunStatus])
    list_parser.add_argument("--profile")
    list_parser.add_argument("--limit", type=int, default=20)
    list_parser.set_defaults(func=list_runs)
    show_parser = runs_commands.add_parser("show", help="show a run with its steps")
    show_parser.add_argument("run_id")
    show_parser.add_argument("--json", action="store_true", help="print the record as JSON")
    show_parser.set_defaults(func=show_run)
    runs_parser.set_defaults(func=list_runs, status=None, profile=None, limit=20)

    approve_parser = commands.add_parser(
        "approve", help="approve (or --reject) the call a run waits for",
        description="Decide on the tool call a run is waiting for.")
    approve_parser.add_argument("run_id")
    approve_parser.add_argument("--reject", action="store_true", help="reject instead")
    approve_parser.add_argument("--reason", help="recorded with the decision")
    approve_parser.add_argument("--args", dest="modified_arguments", type=_json_object,
                                metavar="JSON", help="run the call with these arguments")
    approve_parser.set_defaults(func=approve)

    workflow_parser = commands.add_parser(
        "workflow", help="list or run YAML workflows",
        description="List the workflows (workflows/ next to profiles.yaml, or `workflows:` "
        "in it) or run one, following it like `run`.")
    workflow_commands = workflow_parser.add_subparsers(dest="workflow_command",
                                                       metavar="SUBCOMMAND")
    wf_list = workflow_commands.add_parser("list", help="list workflows")
    wf_list.set_defaults(func=list_workflows)
    wf_run = workflow_commands.add_parser("run", help="run a workflow")
    wf_run.add_argument("name")
    wf_run.add_argument("--input", action="append", type=_key_value, default=[],
                        metavar="KEY=VALUE", help="an input value (repeatable)")
    wf_run.add_argument("--detach", action="store_true",
                        help="print the run id and return at once (needs a running server)")
    wf_run.set_defaults(func=run_workflow)
    workflow_parser.set_defaults(func=list_workflows)

    cancel_parser = commands.add_parser("cancel", help="cancel a run",
                                        description="Cancel a run that has not ended.")
    cancel_parser.add_argument("run_id")
    cancel_parser.set_defaults(func=cancel)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key, value


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, like {\"key\": \"value\"}")
    return value


def _when(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S") if timestamp else "-"


def _print_step(step: StepRecord) -> None:
    print(f"  [{step.n:>3}] {step.kind:<8} {step.summary}")
    if step.kind == "tool" and step.detail.get("result"):
        first = step.detail["result"].strip().splitlines()[:3]
        for line in first:
            print(f"        | {line[:160]}")


def _ask(record: RunRecord) -> tuple[bool, dict[str, Any] | None, str | None] | None:
    pending = record.pending_approval
    assert pending is not None
    print(f"\napproval needed: {pending.tool}  ({pending.reason})")
    print(f"  arguments: {json.dumps(pending.arguments)}")
    if not sys.stdin.isatty():
        print(f"  (no terminal: decide with `orchestrator-mcp approve {record.id}`)")
        return None
    while True:
        answer = input("  [a]pprove, [r]eject, [e]dit arguments, [l]ater? ").strip().lower()
        if answer in ("a", "approve"):
            return True, None, None
        if answer in ("r", "reject"):
            return False, None, input("  reason: ").strip() or None
        if answer in ("l", "later"):
            return None
        if answer in ("e", "edit"):
            try:
                edited = _json_object(input("  new arguments (JSON object): "))
            except argparse.ArgumentTypeError as exc:
                print(f"  {exc}")
                continue
            return True, edited, "arguments edited by the operator"


def run(args: argparse.Namespace) -> int:
    async def work(app: Any) -> int:
        record = await app.engine.submit(args.goal, args.profile, args.context, source="cli",
                                         owner=local_id())
        print(f"run {record.id} ({record.profile}): {record.goal}")
        return EXIT_OK if args.detach else await _follow(app.engine, record)

    return _engine_call(args, work, execute=not args.detach)


def run_workflow(args: argparse.Namespace) -> int:
    async def work(app: Any) -> int:
        record = await app.workflows.submit(args.name, dict(args.input), source="cli",
                                            owner=local_id())
        print(f"workflow run {record.id} ({args.name}) inputs {json.dumps(record.context)}")
        return EXIT_OK if args.detach else await _follow(app.engine, record)

    return _engine_call(args, work, execute=not args.detach)


def list_workflows(args: argparse.Namespace) -> int:
    config = load(args)
    rows = [("WORKFLOW", "STEPS", "INPUTS", "DESCRIPTION")]
    for name, workflow in sorted(config.profiles.workflows.items()):
        rows.append((name, str(len(workflow.steps)), ",".join(workflow.inputs) or "-",
                     workflow.description[:60]))
    print(table(rows))
    return EXIT_OK


async def _follow(engine: Any, record: RunRecord) -> int:
    """Print steps as they happen; ask approvals on the terminal; the run's outcome."""
    if not engine.executor:
        print("  (executed by the server that holds this data dir)")
    # By step number, not position: parallel workflow branches record steps out of order,
    # so a step may appear before ones already printed.
    shown: set[int] = set()
    asked: str | None = None
    while True:
        record = await engine.get(record.id)
        for step in record.steps:
            if step.n not in shown:
                shown.add(step.n)
                _print_step(step)
        if record.status.finished:
            break
        pending = record.pending_approval
        if pending is not None and pending.call_id != asked:
            asked = pending.call_id
            decision = await asyncio.to_thread(_ask, record)
            if decision is None:
                print(f"run {record.id} waits for approval; it continues when decided")
                return EXIT_UNHEALTHY
            approved, modified, reason = decision
            await engine.approve(record.id, approved, modified_arguments=modified,
                                 reason=reason, decided_by=local_id(), via="cli")
        await asyncio.sleep(0.1)
    print(f"\n{record.status.value}" + (f" ({record.stop_reason.value})"
                                         if record.stop_reason else ""))
    if record.answer:
        print(record.answer)
    if record.error:
        print(f"error: {record.error}", file=sys.stderr)
    tokens = record.usage.tokens
    cost = record.usage.cost_usd
    print(f"usage: {tokens} tokens" + (f", ${cost:.4f}" if cost else ""))
    return EXIT_OK if record.status is RunStatus.COMPLETED else EXIT_UNHEALTHY


def list_runs(args: argparse.Namespace) -> int:
    async def work(app: Any) -> int:
        status = RunStatus(args.status) if args.status else None
        records = await app.engine.list(status=status, profile=args.profile, limit=args.limit)
        rows = [("RUN", "STATUS", "PROFILE", "OWNER", "STARTED", "GOAL")]
        rows += [(r.id, r.status.value, r.profile, r.owner or "-", _when(r.created_at),
                  r.goal[:60]) for r in records]
        print(table(rows))
        return EXIT_OK

    return _engine_call(args, work, execute=False)


def show_run(args: argparse.Namespace) -> int:
    async def work(app: Any) -> int:
        record = await app.engine.get(args.run_id)
        if args.json:
            print(record.model_dump_json(indent=2))
            return EXIT_OK
        print(f"run {record.id}  {record.status.value}"
              + (f" ({record.stop_reason.value})" if record.stop_reason else ""))
        print(f"  goal: {record.goal}\n  profile: {record.profile}  source: {record.source}"
              f"  owner: {record.owner or '-'}"
              f"  started: {_when(record.created_at)}  ended: {_when(record.finished_at)}")
        for step in record.steps:
            _print_step(step)
        if record.pending_approval:
            p = record.pending_approval
            print(f"  waiting for approval of {p.tool} {json.dumps(p.arguments)} "
                  f"until {_when(p.expires_at)}")
        if record.answer:
            print(f"answer: {record.answer}")
        if record.error:
            print(f"error: {record.error}")
        print(f"usage: {record.usage.tokens} tokens")
        return EXIT_OK

    return _engine_call(args, work, execute=False)


def approve(args: argparse.Namespace) -> int:
    async def work(app: Any) -> int:
        record = await app.engine.approve(
            args.run_id, not args.reject, modified_arguments=args.modified_arguments,
            reason=args.reason, decided_by=local_id(), via="cli")
        print(f"{'rejected' if args.reject else 'approved'}; run {record.id} is "
              f"{record.status.value}")
        return EXIT_OK

    return _engine_call(args, work, execute=False)


def cancel(args: argparse.Namespace) -> int:
    async def work(app: Any) -> int:
        record = await app.engine.cancel(args.run_id)
        print(f"run {record.id} is {record.status.value}")
        return EXIT_OK

    return _engine_call(args, work, execute=False)


