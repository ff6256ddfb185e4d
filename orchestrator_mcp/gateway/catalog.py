"""One catalog of namespaced tools built from every connected server's tool list.

    server "everything", tool "get-sum"        -> "everything_get-sum"
    server "fs", tool "read.file"              -> "fs_read_file"      (invalid characters)
    server "a", tool "b_c" and server "a_b", tool "c" -> "a_b_c" and "a_b_c_2" (collision, reported)

Names always match `^[A-Za-z0-9_-]{1,64}$`, which every host accepts.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import mcp_types

from orchestrator_mcp.config import ToolFilter

MAX_NAME = 64
_INVALID = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class CatalogTool:
    name: str
    server: str
    tool: mcp_types.Tool

    @property
    def remote_name(self) -> str:
        return self.tool.name

    @property
    def retry_safe(self) -> bool:
        """True when repeating a call cannot change anything twice (read-only or idempotent)."""
        hints = self.tool.annotations
        if hints is None:
            return False
        return bool(hints.read_only_hint or hints.idempotent_hint)


@dataclass(frozen=True)
class Catalog:
    tools: Mapping[str, CatalogTool] = field(default_factory=dict)
    collisions: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.tools)

    def get(self, name: str) -> CatalogTool | None:
        return self.tools.get(name)

    def for_server(self, server: str) -> list[CatalogTool]:
        return [t for t in self.tools.values() if t.server == server]


def tool_allowed(name: str, rules: ToolFilter) -> bool:
    allowed = any(fnmatch.fnmatchcase(name, p) for p in rules.allow)
    return allowed and not any(fnmatch.fnmatchcase(name, p) for p in rules.deny)


def namespaced(server: str, tool: str) -> str:
    name = _INVALID.sub("_", f"{server}_{tool}")
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME - 9]}_{digest}"
    return name


def _with_suffix(name: str, n: int) -> str:
    suffix = f"_{n}"
    return name[: MAX_NAME - len(suffix)] + suffix


def build_catalog(server_tools: Iterable[tuple[str, list[mcp_types.Tool]]]) -> Catalog:
    """Name every tool; servers and tools are visited in sorted order so names are stable."""
    tools: dict[str, CatalogTool] = {}
    collisions: list[str] = []
    for server, server_list in sorted(server_tools, key=lambda item: item[0]):
        for tool in sorted(server_list, key=lambda t: t.name):
            name = base = namespaced(server, tool.name)
            n = 2
            while name in tools:
                name = _with_suffix(base, n)
                n += 1
            if name != base:
                other = tools[base]
                collisions.append(
                    f"{server}/{tool.name} and {other.server}/{other.remote_name} both map to "
                    f"{base!r}; the second is named {name!r}"
                )
            tools[name] = CatalogTool(name=name, server=server, tool=tool)
    return Catalog(tools=tools, collisions=tuple(collisions))
