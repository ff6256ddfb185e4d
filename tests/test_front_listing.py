"""What a host pays in context for the front's own tools: the front's tools/list, built in
process as `serve` builds it, with bench/catalog.py's 1,000 generated tools behind
search_tools. Issue 18's target: the listing plus one search answer is at most 5 % of what
the full catalog would cost (bench/README.md, *catalog.py*, measures it over stdio)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import mcp_types

from orchestrator_mcp.app import build_application
from orchestrator_mcp.config import load_config
from orchestrator_mcp.front.listing import short_output_schema, without_noise
from orchestrator_mcp.gateway.catalog import build_catalog
from orchestrator_mcp.schemas import inline_defs
from tests.conftest import write_config
from tests.test_front import FRONT_TOOLS

CATALOG_BENCH = Path(__file__).resolve().parent.parent / "bench" / "catalog"
sys.path.insert(0, str(CATALOG_BENCH))
import quality  # noqa: E402  (bench/catalog/quality.py: the generated catalog)

TARGET = 0.05
# The median search_tools answer over the labeled phrasings, as bench/catalog.py measured
# it (819 tokens of 4 characters); the listing's changes do not move it.
SEARCH_ANSWER_CHARS = 3_276
ABSENT = {"list_memories", "forget"}  # no profile here has memory


def model_view(tool: mcp_types.Tool) -> int:
    """What most hosts hand their model: name, description, input schema."""
    return len(json.dumps({"name": tool.name, "description": tool.description or "",
                           "input_schema": tool.input_schema}))


def full_catalog() -> tuple[int, int]:
    """Characters of the 1,000 tools as pass-through would list them, and their model
    view (bench/catalog.py's full_catalog_chars)."""
    listed = [mcp_types.Tool(name=f"{server}_{tool.name}",
                             description=f"[{server}] {tool.description}",
                             input_schema=tool.input_schema, annotations=tool.annotations)
              for server, tools in quality.server_tools() for tool in tools]
    return (sum(len(t.model_dump_json(by_alias=True, exclude_none=True)) for t in listed),
            sum(model_view(t) for t in listed))


async def test_the_front_listing_stays_within_its_share_of_the_full_catalog(
        tmp_path: Path) -> None:
    servers = {name: {"command": sys.executable, "args": [str(CATALOG_BENCH / "server.py"),
                                                          name]}
               for name, _ in quality.server_tools()}
    config = write_config(tmp_path / "config", servers,
                          gateway={"passthrough": True, "tool_search_threshold": 40})
    application = build_application(load_config(config), tmp_path / "data", None)
    application.gateway.catalog = build_catalog(quality.server_tools())  # nothing started

    listed = [t.to_mcp_tool() for t in await application.front.list_tools()]

    assert {t.name for t in listed} == (FRONT_TOOLS - ABSENT) | {"search_tools"}
    full, full_model = full_catalog()
    chars = sum(len(t.model_dump_json(by_alias=True, exclude_none=True)) for t in listed)
    model = sum(model_view(t) for t in listed)
    shares = (chars + SEARCH_ANSWER_CHARS) / full, (model + SEARCH_ANSWER_CHARS) / full_model
    assert shares[0] <= TARGET and shares[1] <= TARGET, (
        f"the front's tools list {chars} characters ({model} in the model view): with one "
        f"search answer {shares[0]:.2%} ({shares[1]:.2%}) of the full catalog")
    for tool in listed:
        if tool.output_schema is not None:
            assert len(json.dumps(tool.output_schema)) < 120, tool.name
    wrapped = {t.name for t in listed if (t.output_schema or {}).get("x-fastmcp-wrap-result")}
    assert {"list_runs", "list_servers", "audit"} <= wrapped and "run" not in wrapped
    # Self-contained input schemas: fastmcp's dereferencing (jsonref, requests) is then
    # not on the host's first listing.
    for tool in listed:
        assert "$ref" not in json.dumps(tool.input_schema), tool.name


def test_inlined_definitions_keep_sibling_keywords_and_leave_cycles() -> None:
    schema = {"$defs": {"Status": {"enum": ["a", "b"], "type": "string"}},
              "type": "object", "properties": {"status": {
                  "anyOf": [{"$ref": "#/$defs/Status", "description": "which"},
                            {"type": "null"}]}}}
    assert inline_defs(schema) == {"type": "object", "properties": {"status": {"anyOf": [
        {"enum": ["a", "b"], "type": "string", "description": "which"}, {"type": "null"}]}}}
    cyclic = {"$defs": {"Node": {"type": "object", "properties": {
        "next": {"$ref": "#/$defs/Node"}}}}, "properties": {"head": {"$ref": "#/$defs/Node"}}}
    assert inline_defs(cyclic) is cyclic
    dangling = {"$defs": {}, "properties": {"x": {"$ref": "#/$defs/Gone"}}}
    assert inline_defs(dangling) is dangling


def test_short_schemas_keep_what_results_are_built_and_read_by() -> None:
    assert short_output_schema({"type": "object", "properties": {"run_id": {}}}) == {
        "type": "object"}
    wrapped = {"type": "object", "properties": {"result": {"type": "array", "items": {
        "type": "object", "properties": {"name": {"type": "string"}}}}},
        "required": ["result"], "x-fastmcp-wrap-result": True}
    assert short_output_schema(wrapped) == {
        "type": "object", "properties": {"result": {"type": "array"}},
        "required": ["result"], "x-fastmcp-wrap-result": True}
    schema = {"type": "object", "additionalProperties": False, "properties": {
        "default": {"anyOf": [{"type": "object", "additionalProperties": True},
                              {"type": "null"}], "default": None},
        "limit": {"type": "integer", "default": 5, "enum": [5, None]}}}
    assert without_noise(schema) == {"type": "object", "additionalProperties": False,
                                     "properties": {
                                         "default": {"anyOf": [{"type": "object"},
                                                               {"type": "null"}]},
                                         "limit": {"type": "integer", "default": 5,
                                                   "enum": [5, None]}}}



def test_an_idle_server_with_its_built_ins_connected_loads_no_jsonref(tmp_path: Path) -> None:
    """The front's and the built-in servers' tools are listed with their `$defs` inlined,
    so fastmcp's dereferencing never imports jsonref (and requests, ≈ 5 MB) for them; nor
    does anything load DBOS before there is a run (RunEngine.start(on_demand)), nor
    SQLAlchemy before a call reads or writes the tables (defer_store, stdio); the first
    run-related call then opens them."""
    config = write_config(tmp_path / "config", {})
    code = textwrap.dedent(f"""
        import asyncio, json, sys
        from pathlib import Path
        from orchestrator_mcp.app import build_application
        from orchestrator_mcp.config import load_config

        async def main():
            app = build_application(load_config(Path({str(config)!r})),
                                    Path({str(tmp_path / "data")!r}), None)
            async with app.running():
                listed = await app.front.list_tools()
                async with asyncio.timeout(60):
                    while "knowledge_search" not in app.gateway.catalog.tools:
                        await asyncio.sleep(0.1)
                await asyncio.sleep(1)
                schemas = json.dumps([[e.tool.input_schema, e.tool.output_schema]
                                      for e in app.gateway.catalog.tools.values()])
                print(len(listed), "$ref" in schemas,
                      sorted(m for m in ("jsonref", "requests", "dbos", "sqlalchemy")
                             if m in sys.modules))
                print(len(await app.engine.list()), "sqlalchemy" in sys.modules)

        asyncio.run(main())
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "FASTMCP_CHECK_FOR_UPDATES": "off"})
    assert done.returncode == 0, done.stderr[-2000:]
    idle, first_call = done.stdout.splitlines()[-2:]
    assert idle.split()[1:] == ["False", "[]"], done.stdout
    assert first_call == "0 True", done.stdout
