"""Command line. Thin: each command wires parts and delegates to them."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

# Before fastmcp is imported anywhere: no update check over the network, no banner, and
# no spans of fastmcp's own: our traces (telemetry/tracing.py) use a tracer provider of
# their own, so its spans were never exported, yet making them (≈ 16 a host call, no-op or
# not) cost ≈ 10 % of a call's time in the front.
os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")
os.environ.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")
os.environ.setdefault("FASTMCP_TELEMETRY_MODE", "off")

from orchestrator_mcp import __version__  # noqa: E402
from orchestrator_mcp.cli import init, keys, knowledge, memory, runs, serve, templates  # noqa: E402
from orchestrator_mcp.cli.common import EXIT_CONFIG, report  # noqa: E402
from orchestrator_mcp.errors import UserError  # noqa: E402

if TYPE_CHECKING:
    from orchestrator_mcp.config.environment import OrchestratorEnvironment


def add_global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """--config-dir, --data-dir, --log-level: on the main parser with their defaults, and on
    every command without (SUPPRESS), so `orchestrator-mcp serve --config-dir X` works too
    and only overrides what it names."""
    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--config-dir", type=Path, metavar="DIR",
        default=default(None),
        help="folder with servers.yaml and profiles.yaml (default: the current directory "
        "if it has one of them, else the per-user config dir)",
    )
    parser.add_argument(
        "--data-dir", type=Path, metavar="DIR", default=default(None),
        help="where logs and state are kept (default: $ORCH_DATA_DIR, else the per-user "
        "data dir)",
    )
    parser.add_argument(
        "--log-level", default=default(None),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
        help="log level for stderr and the log file (default: INFO or $ORCH_LOG_LEVEL)",
    )


def _command_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every (sub)command's parser under `parser`, nested ones included."""
    found = []
    for action in parser._actions:  # argparse has no public walk over subcommands
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                found += [sub, *_command_parsers(sub)]
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator-mcp",
        description="An MCP server that orchestrates downstream MCP servers.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_global_options(parser, defaults=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve.add_parsers(commands)
    runs.add_parsers(commands)
    templates.add_parsers(commands)
    knowledge.add_parsers(commands)
    memory.add_parsers(commands)
    keys.add_parsers(commands)
    init.add_parsers(commands)
    for command in _command_parsers(parser):
        add_global_options(command, defaults=False)
    return parser


def _environment() -> OrchestratorEnvironment:
    """The orchestrator's environment variables (config/environment.py), checked before any
    command runs: a bad one is a configuration error."""
    from orchestrator_mcp.config.environment import EnvironmentVariableError, environment

    try:
        return environment().orchestrator
    except EnvironmentVariableError as exc:
        print("environment is invalid:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        raise SystemExit(EXIT_CONFIG)
    orchestrator = _environment()  # checked even when the flags override it
    args.log_level = args.log_level or orchestrator.log_level
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except UserError as exc:
        raise SystemExit(report(exc)) from None
    raise SystemExit(code)
