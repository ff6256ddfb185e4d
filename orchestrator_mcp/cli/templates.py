"""`template list|run` and `schedules`: run templates and schedules from a terminal.

`template run` follows its run like `run` (executes here when no server holds the data
dir, otherwise submits to the one that does).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from orchestrator_mcp.cli.common import EXIT_OK, load, table
from orchestrator_mcp.cli.runs import _engine_call, _follow


def add_parsers(commands: Any) -> None:
    template_parser = commands.add_parser(
        "template", help="list or run run templates",
        description="List the run templates (`templates:` in profiles.yaml) or run one, "
        "following it like `run`.")
    template_commands = template_parser.add_subparsers(dest="template_command",
                                                       metavar="SUBCOMMAND")
    list_parser = template_commands.add_parser("list", help="list templates")
    list_parser.set_defaults(func=list_templates)
    run_parser = template_commands.add_parser("run", help="run a template")
    run_parser.add_argument("name")
    run_parser.add_argument(
        "--param", action="append", type=_parameter, default=[], metavar="KEY=VALUE",
        help="a parameter value (repeatable); a value starting with '[' or '{' is read as "
        "JSON (lists and objects), numbers and true/false are converted by type")
    run_parser.add_argument("--detach", action="store_true",
                            help="print the run id and return at once (needs a running server)")
    run_parser.set_defaults(func=run_template)
    template_parser.set_defaults(func=list_templates)

    schedules_parser = commands.add_parser(
        "schedules", help="list schedules with their next fire times and last runs",
        description="The schedules of profiles.yaml: cron, target, next fire times, and "
        "the last run a tick started.")
    schedules_parser.set_defaults(func=list_schedules)


def _parameter(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    if value.lstrip().startswith(("[", "{")):
        try:
            return key, json.loads(value)
        except json.JSONDecodeError as exc:
            raise argparse.ArgumentTypeError(
                f"{key}: {value[:40]!r} starts like JSON but is not valid JSON ({exc.msg})"
            ) from None
    return key, value


def list_templates(args: argparse.Namespace) -> int:
    config = load(args)
    rows = [("TEMPLATE", "PROFILE", "PARAMETERS", "DESCRIPTION")]
    for name, template in sorted(config.profiles.templates.items()):
        parameters = ",".join(f"{k}{'' if not v.required or v.default is not None else '*'}"
                              for k, v in template.parameters.items()) or "-"
        rows.append((name, template.profile, parameters, template.description[:60]))
    print(table(rows))
    return EXIT_OK


def run_template(args: argparse.Namespace) -> int:
    async def work(app: Any) -> int:
        record = await app.templates.submit(args.name, dict(args.param), source="cli")
        print(f"template run {record.id} ({args.name}, profile {record.profile}): "
              f"{record.goal[:200]}")
        return EXIT_OK if args.detach else await _follow(app.engine, record)

    return _engine_call(args, work, execute=not args.detach)


def list_schedules(args: argparse.Namespace) -> int:
    async def work(app: Any) -> int:
        rows = [("SCHEDULE", "CRON", "TARGET", "NEXT", "LAST RUN")]
        for view in await app.schedules.views():
            last = view.last_run
            rows.append((view.name, f"{view.cron} ({view.timezone})", view.target,
                         view.next_fires[0] if view.next_fires else "disabled",
                         f"{last.run_id} {last.status.value}" if last else "-"))
        print(table(rows))
        return EXIT_OK

    return _engine_call(args, work, execute=False)

