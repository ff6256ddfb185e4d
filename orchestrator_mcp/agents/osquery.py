"""The osquery agent: read-only SQL over this host's state through `osqueryi --json`.

osquery is an external program (no Debian or PyPI package); when it is missing every tool
says so clearly. Only one SELECT (or WITH ... SELECT) statement is ever passed on: the SQL is
tokenized here (SQLite rules: quotes, identifiers, comments) and anything else is refused.
"""

from __future__ import annotations

import json
import re
import time
from typing import Annotated, Any, Literal, NamedTuple

from fastmcp import FastMCP
from fastmcp.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from orchestrator_mcp.agents.commands import require_binary, run_command
from orchestrator_mcp.agents.osquery_settings import OsqueryAgentSettings

# The `curl` tables are refused, so queries never leave this host: closed world.
READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=False)
INSTALL_HINT = "osquery from https://osquery.io/downloads"
MAX_SQL_CHARS = 20_000

PresetName = Literal["processes", "listening_ports", "users", "system_info", "os_version",
                     "mounts"]
PRESETS: dict[str, tuple[str, str]] = {
    "processes": ("Running processes, largest resident memory first.",
                  "SELECT pid, parent, name, path, cmdline, state, uid, resident_size, "
                  "total_size FROM processes ORDER BY resident_size DESC"),
    "listening_ports": ("Listening sockets with their process.",
                        "SELECT lp.pid, p.name, lp.address, lp.port, lp.protocol, lp.family "
                        "FROM listening_ports AS lp LEFT JOIN processes AS p USING (pid) "
                        "ORDER BY lp.port"),
    "users": ("Local user accounts.",
              "SELECT uid, gid, username, description, directory, shell FROM users "
              "ORDER BY uid"),
    "system_info": ("Hostname, CPU, memory and hardware model.",
                    "SELECT hostname, cpu_brand, cpu_physical_cores, cpu_logical_cores, "
                    "physical_memory, hardware_vendor, hardware_model FROM system_info"),
    "os_version": ("Operating system name and version.", "SELECT * FROM os_version"),
    "mounts": ("Mounted filesystems with their size and free blocks.",
               "SELECT path, device, type, blocks_size, blocks, blocks_free, blocks_available, "
               "flags FROM mounts ORDER BY path"),
}

# Words that only start or belong to statements which write, change the schema or the
# connection. Column names equal to one of them must be quoted ("update").
_FORBIDDEN_WORDS = frozenset({
    "insert", "update", "delete", "create", "drop", "alter", "attach", "detach", "pragma",
    "vacuum", "reindex", "begin", "commit", "rollback", "savepoint", "upsert",
})
# Functions with side effects, and tables that reach the network.
_FORBIDDEN_FUNCTIONS = frozenset({"load_extension", "writefile", "fts3_tokenizer"})
_FORBIDDEN_TABLES = frozenset({"curl", "curl_certificate"})

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<line_comment>--[^\n]*)
  | (?P<block_comment>/\*.*?\*/)
  | (?P<open_comment>/\*)
  | (?P<string>'(?:[^']|'')*')
  | (?P<quoted>"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<word>[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*)
  | (?P<param>[?:@$][A-Za-z0-9_]*)
  | (?P<op>\|\||<<|>>|<=|>=|==|!=|<>|->>|->|[-+*/%<>=~&|(),.;])
""", re.VERBOSE | re.DOTALL)


class Token(NamedTuple):
    kind: str
    text: str


def tokenize(sql: str) -> tuple[list[Token], str]:
    """SQLite tokens without whitespace and comments, and `sql` with each comment replaced
    by a space (as SQLite reads it); unterminated quotes and comments are refused."""
    tokens: list[Token] = []
    clean: list[str] = []
    position = 0
    while position < len(sql):
        match = _TOKEN.match(sql, position)
        snippet = sql[position:position + 20]
        if match is None or match.lastgroup == "open_comment":
            if snippet[:1] in "'\"`[/":
                raise ToolError(f"unterminated quote or comment at {snippet!r} — close it")
            raise ToolError(f"unexpected character at {snippet!r} — not valid SQL")
        kind = match.lastgroup or ""
        if kind in ("line_comment", "block_comment"):
            clean.append(" ")
        else:
            clean.append(match.group())
            if kind != "space":
                tokens.append(Token(kind, match.group()))
        position = match.end()
    return tokens, "".join(clean)


def validate_select(sql: str) -> str:
    """`sql` as one read-only SELECT statement (comments removed), or a ToolError saying why."""
    if len(sql) > MAX_SQL_CHARS:
        raise ToolError(f"the query is {len(sql)} characters; the limit is {MAX_SQL_CHARS}")
    tokens, clean = tokenize(sql)
    clean = clean.strip()
    while tokens and tokens[-1].text == ";":
        tokens.pop()
        clean = clean[:-1].rstrip()
    if not tokens:
        raise ToolError("the query is empty — give one SELECT statement")
    if any(t.text == ";" for t in tokens):
        raise ToolError("only one statement is allowed: remove everything after the first ';'")
    first = tokens[0].text.lower()
    if tokens[0].kind != "word" or first not in ("select", "with"):
        raise ToolError(f"only SELECT queries are allowed (the query starts with "
                        f"{tokens[0].text!r}) — this agent is read-only")
    for index, token in enumerate(tokens):
        if token.kind != "word":
            continue
        word = token.text.lower()
        following = tokens[index + 1].text if index + 1 < len(tokens) else ""
        if word in _FORBIDDEN_WORDS or word.startswith("pragma_") or (
                word == "replace" and following != "("):
            raise ToolError(f"{token.text.upper()} is not allowed: only read-only SELECT "
                            "queries are (quote a column of that name: \"name\")")
        if word in _FORBIDDEN_FUNCTIONS:
            raise ToolError(f"the function {token.text} is not allowed (it has side effects)")
        if word in _FORBIDDEN_TABLES:
            raise ToolError(f"the table {token.text} is not allowed (it makes network requests)")
    if first == "with" and not _main_statement_is_select(tokens):
        raise ToolError("a WITH query must end in a SELECT — this agent is read-only")
    return clean


def _main_statement_is_select(tokens: list[Token]) -> bool:
    """`WITH name AS (...), ... <main>`: the CTE bodies sit in parentheses, so the first
    statement keyword outside them is the main statement's."""
    depth = 0
    for token in tokens[1:]:
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
        elif depth == 0 and token.kind == "word" and token.text.lower() in (
                "select", "values", "insert", "update", "delete", "replace"):
            return token.text.lower() == "select"
    return False


class QueryResult(BaseModel):
    sql: str = Field(description="the statement that was run (comments removed)")
    rows: list[dict[str, Any]]
    total_rows: int = Field(description="rows osquery returned before the cap")
    truncated: bool = Field(description="true when rows were cut to max_rows")
    seconds: float


class Preset(BaseModel):
    name: str
    description: str
    sql: str


async def _run(settings: OsqueryAgentSettings, sql: str) -> QueryResult:
    statement = validate_select(sql)
    binary = require_binary(settings.binary, INSTALL_HINT)
    started = time.monotonic()
    result = await run_command([binary, "--json", statement], timeout=settings.timeout)
    if result.timed_out:
        raise ToolError(f"osqueryi did not answer within {settings.timeout} s — narrow the "
                        "query (WHERE, LIMIT) or raise agents.osquery.timeout")
    if result.exit_code != 0:
        detail = (result.stderr or result.stdout).strip()[:2000]
        raise ToolError(f"osqueryi failed (exit {result.exit_code}): {detail}")
    try:
        rows = json.loads(result.stdout or "[]")
    except json.JSONDecodeError as exc:
        raise ToolError(f"osqueryi printed something that is not JSON ({exc.msg}): "
                        f"{result.stdout[:300]!r}") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ToolError("osqueryi did not print a JSON list of rows")
    return QueryResult(sql=statement, rows=rows[:settings.max_rows], total_rows=len(rows),
                       truncated=len(rows) > settings.max_rows,
                       seconds=round(time.monotonic() - started, 3))


def build(settings: OsqueryAgentSettings) -> FastMCP:
    mcp = FastMCP("osquery", instructions=(
        "Read-only SQL over this host's state with osquery (tables: processes, users, "
        "listening_ports, mounts, os_version, system_info, ...). One SELECT per call."))

    @mcp.tool(annotations=READ_ONLY)
    async def query(sql: Annotated[str, Field(description=(
            "one SELECT (or WITH ... SELECT) statement in osquery's SQLite dialect"))],
    ) -> QueryResult:
        """Run one read-only osquery SELECT (or WITH ... SELECT) statement; rows are capped."""
        return await _run(settings, sql)

    @mcp.tool(annotations=READ_ONLY)
    async def preset(name: PresetName) -> QueryResult:
        """Run a named query: processes, listening_ports, users, system_info, os_version,
        mounts."""
        return await _run(settings, PRESETS[name][1])

    @mcp.tool(annotations=READ_ONLY)
    async def list_presets() -> list[Preset]:
        """The named queries `preset` can run, with their SQL."""
        return [Preset(name=name, description=description, sql=sql)
                for name, (description, sql) in PRESETS.items()]

    return mcp
