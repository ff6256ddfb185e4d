"""One generated ops server of bench/catalog.py, over stdio: a FastMCP server whose tools
are the spec's (names, descriptions, input schemas, annotations) and answer with a stub.

    python bench/catalog/server.py k8s [--seed 18]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fastmcp import FastMCP  # noqa: E402
from fastmcp.tools import Tool, ToolResult  # noqa: E402
from generate import SEED, ToolSpec, generate, load_spec  # noqa: E402
from mcp_types import TextContent, ToolAnnotations  # noqa: E402


class StubTool(Tool):
    """A tool of the generated catalog: it says what it would have done."""

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        text = f"{self.name}: done (bench stub) with {json.dumps(arguments, sort_keys=True)}"
        return ToolResult(content=[TextContent(type="text", text=text)])


def stub(spec: ToolSpec) -> StubTool:
    hints = ToolAnnotations.model_validate(spec.annotations) if spec.annotations else None
    return StubTool(name=spec.name, description=spec.description,
                    parameters=spec.input_schema, annotations=hints)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    os.environ.setdefault("FASTMCP_CHECK_FOR_UPDATES", "off")
    tools = generate(load_spec(), args.seed)[args.server]
    mcp = FastMCP(args.server)
    for spec in tools:
        mcp.add_tool(stub(spec))
    mcp.run(show_banner=False)


if __name__ == "__main__":
    main()
