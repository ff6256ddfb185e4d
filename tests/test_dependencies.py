"""Every module orchestrator_mcp imports is in the standard library, the project itself, or a
distribution pyproject.toml declares (a dependency or an extra): an import that only works
because something else happened to pull its package in breaks on the next release."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "orchestrator_mcp"


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    names = {re.split(r"[<>=!~\[;\s]", r, maxsplit=1)[0] for r in requirements}
    return {re.sub(r"[-_.]+", "-", n).lower() for n in names}


def _top_level_imports() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                found.setdefault(module.split(".")[0], set()).add(
                    str(path.relative_to(ROOT)))
    return found


def test_every_import_is_stdlib_or_declared() -> None:
    declared = _declared()
    providers = packages_distributions()
    undeclared = {}
    for module, files in sorted(_top_level_imports().items()):
        if module in sys.stdlib_module_names or module == "orchestrator_mcp":
            continue
        distributions = {re.sub(r"[-_.]+", "-", d).lower() for d in providers.get(module, [])}
        if not distributions & declared:
            undeclared[module] = (sorted(distributions) or ["not installed"], sorted(files))
    assert not undeclared, (
        "imported but not declared in pyproject.toml (module: distributions, files): "
        f"{undeclared}")
