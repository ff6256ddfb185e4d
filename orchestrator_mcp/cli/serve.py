"""`serve` (stdio or --http) and `check`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from orchestrator_mcp.cli.common import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_UNHEALTHY,
    load,
    port,
    positive,
    table,
)
from orchestrator_mcp.config import resolve_data_dir


def add_parsers(commands: Any) -> None:
    serve_parser = commands.add_parser(
        "serve", help="run the MCP server (stdio unless --http)",
        description="Run the MCP server. By default it speaks MCP over stdio, as hosts such "
        "as Claude Desktop expect. With --http it serves Streamable HTTP at /mcp plus "
        "/healthz, /readyz and /metrics, and requires a bearer token (ORCH_HTTP_TOKEN, "
        "servers.yaml http.token or http.tokens; an empty value counts as none) or an "
        "OAuth access token (http.auth) unless --no-auth is given on a loopback host.",
    )
    serve_parser.add_argument("--http", action="store_true",
                              help="serve Streamable HTTP, not stdio")
    serve_parser.add_argument("--host", default="127.0.0.1",
                              help="HTTP bind address (127.0.0.1)")
    serve_parser.add_argument("--port", type=port, default=8765, help="HTTP port (8765)")
    serve_parser.add_argument(
        "--no-auth", action="store_true",
        help="serve HTTP without a token (configured tokens are ignored); refused unless "
        "--host is a loopback address",
    )
    serve_parser.add_argument(
        "--no-execute", action="store_true",
        help="only accept and answer: leave executing runs to `orchestrator-mcp worker` "
        "processes (useful with a shared ORCH_DATABASE_URL)")
    serve_parser.set_defaults(func=serve)

    worker_parser = commands.add_parser(
        "worker", help="execute runs and workflows, with no front",
        description="Execute queued runs and workflows until stopped (SIGTERM or Ctrl-C). "
        "With ORCH_DATABASE_URL (PostgreSQL) any number of workers share the queue, and a "
        "worker that dies has its runs recovered by another; on the embedded SQLite files "
        "one process per data dir executes runs.",
    )
    worker_parser.add_argument(
        "--metrics-port", type=port, metavar="PORT",
        help="also serve /healthz and /metrics (what this worker executed) on this port, "
        "with the bearer token of `serve --http`")
    worker_parser.add_argument("--host", default="127.0.0.1",
                               help="bind address for --metrics-port (127.0.0.1)")
    worker_parser.set_defaults(func=worker)

    check_parser = commands.add_parser(
        "check", help="validate config and probe every downstream server",
        description="Validate servers.yaml and profiles.yaml, print who `serve --http` lets "
        "in (token names, the http.auth provider; never a secret) and fetch its JWKS, "
        "connect to every enabled downstream server and print a table: name, transport, "
        "status, tools, latency, error. Exit code: 0 all good, 1 a server is not up or the "
        "JWKS is unusable, 2 the config is invalid.",
    )
    check_parser.add_argument("--timeout", type=positive, default=30.0,
                              help="seconds to wait for servers to connect (30)")
    check_parser.set_defaults(func=check)


NO_TOKEN = ("HTTP needs a bearer token and none is set (ORCH_HTTP_TOKEN and servers.yaml "
            "http.token are unset or empty, http.tokens lists none and http.auth is not "
            "set). Fix: export "
            "ORCH_HTTP_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))') "
            "and send it as 'Authorization: Bearer <token>'; or, to try it on this machine "
            "only, pass --no-auth with a loopback --host (127.0.0.1)")


def serve(args: argparse.Namespace) -> int:
    config = load(args)
    from orchestrator_mcp.auth import Authenticator
    from orchestrator_mcp.config.base import is_loopback_host

    authenticator: Authenticator | None = None
    if args.http:
        if args.no_auth:
            if not is_loopback_host(args.host):
                print(f"--no-auth is only allowed on a loopback host, not {args.host!r}; "
                      "set ORCH_HTTP_TOKEN instead", file=sys.stderr)
                return EXIT_CONFIG
        else:
            authenticator = Authenticator.from_settings(config.servers.http)
            if not authenticator:
                print(NO_TOKEN, file=sys.stderr)
                return EXIT_CONFIG

    from orchestrator_mcp.app import build_application
    from orchestrator_mcp.telemetry.logs import config_secrets, configure_logging

    data_dir = resolve_data_dir(args.data_dir)
    log_dir = configure_logging(data_dir, args.log_level, secrets=config_secrets(config))
    application = build_application(config, data_dir, log_dir, http=args.http,
                                    execute=not args.no_execute)
    if not args.http:
        asyncio.run(application.front.run_stdio_async(show_banner=False))
        return EXIT_OK
    if authenticator is not None:
        from orchestrator_mcp.auth.key_store import ManagedKeys

        authenticator.keys = ManagedKeys(application.engine.database_engine)

    import uvicorn

    from orchestrator_mcp.sidecar import build_app

    app = build_app(application.front, application.gateway, authenticator, config.servers.http,
                    application.engine, application.alerts, application.workflows,
                    application.knowledge)
    # log_config=None: uvicorn's loggers go through our handlers (and their redaction).
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower(),
                access_log=False, log_config=None)
    return EXIT_OK


def check(args: argparse.Namespace) -> int:
    config = load(args)
    from orchestrator_mcp.app import in_process_servers, knowledge_base
    from orchestrator_mcp.gateway import Gateway, ServerHealth, ServerStatus

    logging.basicConfig(level=logging.ERROR)
    data_dir = resolve_data_dir(args.data_dir)
    log_dir = data_dir / "logs"
    log_dir.mkdir(exist_ok=True)

    async def probe() -> tuple[list[ServerHealth], set[str]]:
        gateway = Gateway(config.servers.servers, config.servers.gateway, log_dir,
                          in_process=in_process_servers(
                              config, data_dir, knowledge_base(config, data_dir)))
        gateway.start()
        try:
            await gateway.wait_settled(args.timeout)
            return gateway.health(), set(gateway.catalog.tools)
        finally:
            await gateway.stop()

    where = config.servers_path or "no servers.yaml found"
    print(f"config: {where}; profiles: {config.profiles_path or 'none'}")
    remembering = [f"{name} (write {p.memory.write}, recall {p.memory.recall_top_k})"
                   for name, p in sorted(config.profiles.profiles.items()) if p.memory.enabled]
    print(f"memory: {', '.join(remembering) or 'no profile enables it'}")
    auth_ok = _report_http_auth(config.servers.http)
    health, catalog = asyncio.run(probe())
    rows = [("NAME", "TRANSPORT", "STATUS", "TOOLS", "LATENCY", "ERROR")]
    for h in health:
        latency = f"{h.connect_seconds * 1000:.0f} ms" if h.connect_seconds else "-"
        rows.append((h.name, h.transport, h.status.value, str(h.tools), latency,
                     h.last_error or ""))
    print(table(rows))
    bad = [h for h in health if h.status not in (ServerStatus.UP, ServerStatus.DISABLED)]
    missing = [f"workflow {name}, step {step.id}: tool {step.tool!r} is not in the catalog"
               for name, workflow in sorted(config.profiles.workflows.items())
               for step in workflow.steps if step.tool and step.tool not in catalog]
    for problem in missing:
        print(problem)
    return EXIT_UNHEALTHY if bad or missing or not auth_ok else EXIT_OK


def _report_http_auth(http: Any) -> bool:
    """Who `serve --http` lets in (never a secret), and whether the OAuth provider's keys
    can be fetched."""
    from orchestrator_mcp.auth import Authenticator

    names = [t.name for t in http.tokens] + (["main (http.token / ORCH_HTTP_TOKEN)"]
                                             if http.token else [])
    print(f"http tokens: {', '.join(names) or 'none'}")
    if http.auth is None:
        print("http auth: none (static tokens only)")
        return True
    print(f"http auth: {http.auth.describe()}")
    authenticator = Authenticator.from_settings(http)

    async def probe() -> tuple[bool, str]:
        try:
            assert authenticator.oauth is not None
            return await authenticator.oauth.probe()
        finally:
            await authenticator.aclose()

    ok, text = asyncio.run(probe())
    print(f"http auth provider: {text}")
    return ok


def worker(args: argparse.Namespace) -> int:
    config = load(args)
    from orchestrator_mcp.auth import Authenticator

    authenticator = Authenticator.from_settings(config.servers.http)
    if args.metrics_port is not None and not authenticator:
        print(NO_TOKEN.replace("HTTP needs", "--metrics-port needs")
              .split("; or, to try")[0], file=sys.stderr)
        return EXIT_CONFIG
    from orchestrator_mcp.app import build_application
    from orchestrator_mcp.telemetry.logs import config_secrets, configure_logging

    data_dir = resolve_data_dir(args.data_dir)
    log_dir = configure_logging(data_dir, args.log_level, secrets=config_secrets(config))
    application = build_application(config, data_dir, log_dir, role="worker")
    engine = application.engine
    log = logging.getLogger("orchestrator_mcp.worker")

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        async with application.started():
            problem = await engine.healthy()
            if problem is not None:
                print(f"error: {problem}", file=sys.stderr)
                return EXIT_CONFIG
            if not engine.executor:
                print(f"error: another process executes runs for {data_dir} (SQLite allows "
                      "one); set ORCH_DATABASE_URL to a PostgreSQL database to run several "
                      "workers", file=sys.stderr)
                return EXIT_CONFIG
            log.info("worker %s executing runs (%s, up to %d at once)", engine.executor_id,
                     engine.database.shown, engine.settings.worker_concurrency)
            if args.metrics_port is None:
                await stop.wait()
                return EXIT_OK
            import uvicorn

            from orchestrator_mcp.auth.key_store import ManagedKeys
            from orchestrator_mcp.sidecar import build_metrics_app

            authenticator.keys = ManagedKeys(engine.database_engine)
            server = uvicorn.Server(uvicorn.Config(
                build_metrics_app(authenticator), host=args.host, port=args.metrics_port,
                log_level=args.log_level.lower(), access_log=False, log_config=None))
            # uvicorn takes SIGTERM/SIGINT while it serves and passes them on when it stops.
            serving = asyncio.create_task(server.serve(), name="worker:metrics")
            await asyncio.wait([serving, asyncio.create_task(stop.wait())],
                               return_when=asyncio.FIRST_COMPLETED)
            server.should_exit = True
            await serving
            return EXIT_OK

    return asyncio.run(main())
