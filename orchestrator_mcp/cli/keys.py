"""`keys create|list|revoke`: managed API keys for `serve --http` (auth/keys.py).

They work on the database directly (the data dir's SQLite file or ORCH_DATABASE_URL), so a
running server needs no restart: a new key works, and a revoked one is refused, from the
next request on.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from orchestrator_mcp.cli.common import EXIT_OK, load, table
from orchestrator_mcp.config import resolve_data_dir


def add_parsers(commands: Any) -> None:
    keys = commands.add_parser(
        "keys", help="create, list or revoke API keys for serve --http",
        description="Managed API keys: bearer keys for `serve --http` kept (hashed) in the "
        "database, with scopes, an expiry and optional limits; created and revoked without "
        "a restart.")
    sub = keys.add_subparsers(dest="keys_command", metavar="SUBCOMMAND")
    create = sub.add_parser("create", help="create a key and print it (shown once)")
    create.add_argument("--name", required=True,
                        help="1-32 letters, digits, '_' or '-'; its runs are owned by "
                        "'key:NAME'")
    create.add_argument("--scopes", required=True,
                        help="comma-separated: read, read_all, run, approve, admin")
    create.add_argument("--expires", default="90d",
                        help="30d, 12h, 2w, a date (2027-01-31, UTC), an ISO time or 'never' "
                        "(default 90d)")
    create.add_argument("--max-concurrent-runs", type=int, metavar="N",
                        help="runs of this key not yet ended (default: http.limits)")
    create.add_argument("--monthly-cost-usd", type=float, metavar="USD",
                        help="model cost of its runs per calendar month (default: "
                        "http.limits)")
    create.add_argument("--json", action="store_true", help="print the key and its record "
                        "as JSON")
    create.set_defaults(func=create_key)
    listing = sub.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--all", action="store_true", help="also revoked and expired keys")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=list_keys)
    revoke = sub.add_parser("revoke", help="revoke a key at once, in every replica")
    revoke.add_argument("name", help="the key's name (or its prefix)")
    revoke.set_defaults(func=revoke_key)
    keys.set_defaults(func=list_keys, all=False, json=False)


def _store(args: argparse.Namespace) -> Any:
    from orchestrator_mcp.auth.key_store import KeyStore
    from orchestrator_mcp.config.environment import environment
    from orchestrator_mcp.runs.database import Database
    from orchestrator_mcp.runs.store import RunStore

    config = load(args)
    data_dir = resolve_data_dir(args.data_dir)
    database = Database.for_data_dir(
        data_dir, environment().orchestrator.database(config.servers.runs.database_url))
    return KeyStore(RunStore(database.store_url).engine)  # RunStore migrates the tables


def _when(timestamp: float | None, never: str = "-") -> str:
    if timestamp is None:
        return never
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def create_key(args: argparse.Namespace) -> int:
    from orchestrator_mcp.auth import local_id
    from orchestrator_mcp.auth.keys import InvalidKeyRequest, key_request
    from orchestrator_mcp.config.http import PrincipalLimits

    limits = None
    if args.max_concurrent_runs is not None or args.monthly_cost_usd is not None:
        try:
            limits = PrincipalLimits(max_concurrent_runs=args.max_concurrent_runs,
                                     monthly_cost_usd=args.monthly_cost_usd)
        except ValueError as exc:
            raise InvalidKeyRequest(f"invalid limits: {exc}") from None
    request = key_request(args.name, args.scopes, args.expires, limits)
    created = _store(args).create(request, local_id())
    if args.json:
        print(json.dumps({"key": created.key, **created.info.model_dump(mode="json")}))
        return EXIT_OK
    info = created.info
    print(created.key)
    print(f"# key '{info.name}' (prefix {info.prefix}), scopes {','.join(info.scopes)}, "
          f"expires {_when(info.expires_at, 'never')}. Shown once: store it now; only a "
          "hash is kept.")
    return EXIT_OK


def list_keys(args: argparse.Namespace) -> int:
    keys = _store(args).list(include_inactive=args.all)
    if args.json:
        print(json.dumps([k.model_dump(mode="json") for k in keys]))
        return EXIT_OK
    rows = [("NAME", "PREFIX", "STATE", "SCOPES", "EXPIRES", "LAST USED", "CREATED BY")]
    rows += [(k.name, k.prefix, k.state, ",".join(k.scopes), _when(k.expires_at, "never"),
              _when(k.last_used_at), k.created_by) for k in keys]
    print(table(rows))
    return EXIT_OK


def revoke_key(args: argparse.Namespace) -> int:
    from orchestrator_mcp.auth import local_id

    info = _store(args).revoke(args.name, local_id())
    print(f"revoked key '{info.name}' (prefix {info.prefix}); it is refused from the next "
          "request on")
    return EXIT_OK
