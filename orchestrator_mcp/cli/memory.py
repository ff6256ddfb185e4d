"""`memory list|export|import|forget`: agent memory from a terminal.

Export writes one JSON object per line (a memory with its provenance); import reads that
format back, checks every line before writing any, and audits each memory it writes. An
imported memory keeps its provenance and is marked `source: import`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator_mcp.cli.common import EXIT_OK, EXIT_UNHEALTHY, engine_call, table

MAX_IMPORT_LINES = 100_000


def add_parsers(commands: Any) -> None:
    memory = commands.add_parser(
        "memory", help="list, export, import or forget agent memories",
        description="Agent memory: facts runs of profiles with `memory.enabled` remembered "
        "for later runs, with their provenance.")
    sub = memory.add_subparsers(dest="memory_command", metavar="SUBCOMMAND")
    listing = sub.add_parser("list", help="list memories (newest first)")
    listing.add_argument("--profile")
    listing.add_argument("--tag")
    listing.add_argument("--text", help="only facts containing this text")
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(func=list_memories)
    export = sub.add_parser("export", help="write memories as JSON lines")
    export.add_argument("--profile", help="only this profile's")
    export.add_argument("--output", "-o", type=Path, help="file to write (default: stdout)")
    export.set_defaults(func=export_memories)
    load = sub.add_parser("import", help="read memories from JSON lines (an export)")
    load.add_argument("file", type=Path, help="a file of JSON lines, or - for stdin")
    load.add_argument("--profile", help="import every memory into this profile instead")
    load.set_defaults(func=import_memories)
    forget = sub.add_parser("forget", help="delete a memory")
    forget.add_argument("memory_id")
    forget.set_defaults(func=forget_memory)
    memory.set_defaults(func=list_memories, profile=None, tag=None, text=None, limit=50)


def _when(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M") if timestamp else "-"


def list_memories(args: argparse.Namespace) -> int:
    async def work(app: Any) -> int:
        memories = await app.engine.memories()
        found = await memories.list(profile=args.profile, tag=args.tag, text=args.text,
                                    limit=args.limit)
        rows = [("ID", "PROFILE", "LEARNED", "RUN", "APPROVED BY", "EXPIRES", "FACT")]
        rows += [(m.id, m.profile, _when(m.created_at), m.run_id or "-",
                  m.approved_by or "-", _when(m.expires_at), m.fact[:80]) for m in found]
        print(table(rows))
        return EXIT_OK

    return engine_call(args, work, execute=False)


def export_memories(args: argparse.Namespace) -> int:
    async def work(app: Any) -> int:
        memories = await app.engine.memories()
        out = args.output.open("w", encoding="utf-8") if args.output else sys.stdout
        count = 0
        try:
            async for batch in memories.export(args.profile):
                out.writelines(m.model_dump_json() + "\n" for m in batch)
                count += len(batch)
        finally:
            if args.output:
                out.close()
        print(f"exported {count} memories", file=sys.stderr)
        return EXIT_OK

    return engine_call(args, work, execute=False)


def _read(path: Path, profile: str | None) -> tuple[list[Any], list[str]]:
    """Every memory of the file, and what is wrong with its bad lines."""
    from orchestrator_mcp.memory import BadMemory, Memory

    found, problems = [], []
    handle = sys.stdin if str(path) == "-" else path.open(encoding="utf-8", errors="replace")
    with handle:
        for number, line in enumerate(handle, 1):
            if number > MAX_IMPORT_LINES:
                problems.append(f"more than {MAX_IMPORT_LINES} lines: split the file")
                break
            if not line.strip():
                continue
            try:
                memory = Memory.imported(line)
                if profile:
                    memory = Memory.imported(memory.model_copy(
                        update={"profile": profile}).model_dump_json())
                found.append(memory)
            except BadMemory as exc:
                problems.append(f"line {number}: {exc}")
    return found, problems


def import_memories(args: argparse.Namespace) -> int:
    from orchestrator_mcp.memory.models import PROFILE

    if args.profile and not PROFILE.match(args.profile):
        print(f"error: profile {args.profile!r} is not a profile name", file=sys.stderr)
        return EXIT_UNHEALTHY
    try:
        found, problems = _read(args.file, args.profile)
    except OSError as exc:
        print(f"error: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_UNHEALTHY
    if problems:
        print(f"nothing imported; {len(problems)} bad lines:", file=sys.stderr)
        for problem in problems[:20]:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_UNHEALTHY

    async def work(app: Any) -> int:
        memories = await app.engine.memories()
        for memory in found:
            stored = await memories.put(memory)
            await app.engine.record_audit([dict(
                kind="memory", caller="cli", tool="import", run_id=stored.run_id,
                outcome="written", arguments={"memory_id": stored.id, "fact": stored.fact,
                                              "profile": stored.profile})])
        print(f"imported {len(found)} memories", file=sys.stderr)
        return EXIT_OK

    return engine_call(args, work, execute=False)


def forget_memory(args: argparse.Namespace) -> int:
    async def work(app: Any) -> int:
        memories = await app.engine.memories()
        memory = await memories.forget(args.memory_id)
        await app.engine.record_audit([dict(
            kind="memory", caller="cli", tool="forget", run_id=memory.run_id,
            outcome="forgotten", arguments={"memory_id": memory.id, "fact": memory.fact})])
        print(f"forgot {memory.id}: {memory.fact[:80]}")
        return EXIT_OK

    return engine_call(args, work, execute=False)
