"""Command line. Thin: each command wires parts and delegates to them."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Before fastmcp is imported anywhere: no update check over the network, no banner.
os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")
os.environ.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")

from orchestrator_mcp import __version__  # noqa: E402
from orchestrator_mcp.cli import knowledge, runs, serve  # noqa: E402
from orchestrator_mcp.cli.common import EXIT_CONFIG  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator-mcp",
        description="An MCP server that orchestrates downstream MCP servers.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--config-dir", type=Path, metavar="DIR",
        help="folder with servers.yaml and profiles.yaml (default: the current directory "
        "if it has one of them, else the per-user config dir)",
    )
    parser.add_argument(
        "--data-dir", type=Path, metavar="DIR",
        help="where logs and state are kept (default: $ORCH_DATA_DIR, else the per-user "
        "data dir)",
    )
    parser.add_argument(
        "--log-level", default=os.environ.get("ORCH_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
        help="log level for stderr and the log file (default: INFO or $ORCH_LOG_LEVEL)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve.add_parsers(commands)
    runs.add_parsers(commands)
    knowledge.add_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        raise SystemExit(EXIT_CONFIG)
    try:
        raise SystemExit(args.func(args))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
