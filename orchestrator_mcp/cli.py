"""Command line: `serve` (stdio or --http) and `check`. Thin: it wires parts and delegates."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

# Before fastmcp is imported anywhere: no update check over the network, no banner.
os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")
os.environ.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")

from orchestrator_mcp import __version__  # noqa: E402
from orchestrator_mcp.config import (  # noqa: E402
    Config,
    ConfigError,
    find_config_dir,
    load_config,
    resolve_data_dir,
)

EXIT_OK, EXIT_UNHEALTHY, EXIT_CONFIG = 0, 1, 2


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is outside 1-65535")
    return port


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


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

    serve = commands.add_parser(
        "serve", help="run the MCP server (stdio unless --http)",
        description="Run the MCP server. By default it speaks MCP over stdio, as hosts such "
        "as Claude Desktop expect. With --http it serves Streamable HTTP at /mcp plus "
        "/healthz, /readyz and /metrics, and requires a bearer token (ORCH_HTTP_TOKEN or "
        "servers.yaml http.token) unless --no-auth is given on a loopback host.",
    )
    serve.add_argument("--http", action="store_true", help="serve Streamable HTTP, not stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (127.0.0.1)")
    serve.add_argument("--port", type=_port, default=8765, help="HTTP port (8765)")
    serve.add_argument(
        "--no-auth", action="store_true",
        help="serve HTTP without a token; refused unless --host is a loopback address",
    )

    check = commands.add_parser(
        "check", help="validate config and probe every downstream server",
        description="Validate servers.yaml and profiles.yaml, connect to every enabled "
        "downstream server and print a table: name, transport, status, tools, latency, "
        "error. Exit code: 0 all servers up, 1 a server is not up, 2 the config is invalid.",
    )
    check.add_argument(
        "--timeout", type=_positive, default=30.0,
        help="seconds to wait for servers to connect (30)",
    )
    return parser


def _load(args: argparse.Namespace) -> Config:
    try:
        return load_config(find_config_dir(args.config_dir))
    except ConfigError as exc:
        print("configuration is invalid:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def _http_token(config: Config) -> str | None:
    return os.environ.get("ORCH_HTTP_TOKEN") or config.servers.http.token


def serve(args: argparse.Namespace) -> int:
    config = _load(args)
    token = _http_token(config) if args.http else None
    if args.http and token is None:
        from orchestrator_mcp.sidecar import is_loopback

        if not args.no_auth:
            print("HTTP needs a bearer token: set ORCH_HTTP_TOKEN (or http.token in "
                  "servers.yaml), or pass --no-auth with a loopback --host", file=sys.stderr)
            return EXIT_CONFIG
        if not is_loopback(args.host):
            print(f"--no-auth is only allowed on a loopback host, not {args.host!r}; "
                  "set ORCH_HTTP_TOKEN instead", file=sys.stderr)
            return EXIT_CONFIG

    from orchestrator_mcp.app import build_application
    from orchestrator_mcp.telemetry.logs import configure_logging

    data_dir = resolve_data_dir(args.data_dir)
    log_dir = configure_logging(data_dir, args.log_level)
    application = build_application(config, data_dir, log_dir)
    if not args.http:
        asyncio.run(application.front.run_stdio_async(show_banner=False))
        return EXIT_OK

    import uvicorn

    from orchestrator_mcp.sidecar import build_app

    app = build_app(application.front, application.gateway, token)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower(),
                access_log=False)
    return EXIT_OK


def check(args: argparse.Namespace) -> int:
    config = _load(args)
    from orchestrator_mcp.gateway import Gateway, ServerHealth, ServerStatus

    log_dir = resolve_data_dir(args.data_dir) / "logs"
    log_dir.mkdir(exist_ok=True)

    async def probe() -> list[ServerHealth]:
        gateway = Gateway(config.servers.servers, config.servers.gateway, log_dir)
        gateway.start()
        try:
            await gateway.wait_settled(args.timeout)
            return gateway.health()
        finally:
            await gateway.stop()

    where = config.servers_path or "no servers.yaml found"
    print(f"config: {where}; profiles: {config.profiles_path or 'none'}")
    health = asyncio.run(probe()) if config.servers.servers else []
    rows = [("NAME", "TRANSPORT", "STATUS", "TOOLS", "LATENCY", "ERROR")]
    for h in health:
        latency = f"{h.connect_seconds * 1000:.0f} ms" if h.connect_seconds else "-"
        rows.append((h.name, h.transport, h.status.value, str(h.tools), latency,
                     h.last_error or ""))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False))
              + "  " + row[5])
    bad = [h for h in health if h.status not in (ServerStatus.UP, ServerStatus.DISABLED)]
    return EXIT_UNHEALTHY if bad else EXIT_OK


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        raise SystemExit(EXIT_CONFIG)
    handler = {"serve": serve, "check": check}[args.command]
    try:
        raise SystemExit(handler(args))
    except KeyboardInterrupt:
        raise SystemExit(130) from None
