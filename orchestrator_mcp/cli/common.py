"""What every command shares: exit codes, argument types, loading the configuration."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from orchestrator_mcp.config import Config, ConfigError, find_config_dir, load_config
from orchestrator_mcp.errors import UserError

EXIT_OK, EXIT_UNHEALTHY, EXIT_CONFIG = 0, 1, 2


def int_between(low: int, high: int, what: str) -> Any:
    """An argparse type: an integer from `low` to `high`, named `what` in errors."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {what} number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{what} {value} is outside {low}-{high}")
        return value
    return parse


port = int_between(1, 65535, "port")


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def load(args: argparse.Namespace) -> Config:
    return load_config(find_config_dir(args.config_dir))


def engine_call(args: argparse.Namespace, work: Any, *, execute: bool) -> int:
    """Build the application, start it as a command (executing or not), run `work(app)`."""
    import asyncio

    from orchestrator_mcp.app import build_application
    from orchestrator_mcp.config import resolve_data_dir
    from orchestrator_mcp.telemetry.logs import configure_logging

    config = load(args)
    data_dir = resolve_data_dir(args.data_dir)
    log_dir = configure_logging(data_dir, "WARNING")
    app = build_application(config, data_dir, log_dir, role="command", execute=execute)

    async def main() -> int:
        async with app.started():
            return await work(app)

    return asyncio.run(main())


def report(error: UserError) -> int:
    """How every command reports a user error: on stderr, exit code EXIT_CONFIG."""
    if isinstance(error, ConfigError):
        print("configuration is invalid:", file=sys.stderr)
        for problem in error.problems:
            print(f"  {problem}", file=sys.stderr)
    else:
        print(f"error: {error}", file=sys.stderr)
    return EXIT_CONFIG


def table(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns; the last column is not padded."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in rows
    )
