"""Rules the package keeps everywhere: no shell, no eval/exec, no unsafe YAML."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "orchestrator_mcp"
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_shell_no_eval_no_unsafe_yaml(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for call in _calls(tree):
        where = f"{path.relative_to(PACKAGE)}:{call.lineno}"
        builtin = isinstance(call.func, ast.Name)
        assert not (builtin and _name(call) in ("eval", "exec", "compile")), \
            f"{where}: {_name(call)}()"
        on_os = isinstance(call.func, ast.Attribute) and getattr(call.func.value, "id", "") == "os"
        assert not (on_os and _name(call) in ("system", "popen")), f"{where}: os.{_name(call)}()"
        for keyword in call.keywords:
            is_true = isinstance(keyword.value, ast.Constant) and keyword.value.value is True
            assert not (keyword.arg == "shell" and is_true), f"{where}: shell=True"
        if _name(call) == "load" and isinstance(call.func, ast.Attribute) \
                and getattr(call.func.value, "id", "") == "yaml":
            loader = next((k.value for k in call.keywords if k.arg == "Loader"), None)
            assert loader is not None and "Safe" in ast.unparse(loader) or \
                "UniqueKey" in ast.unparse(loader), f"{where}: yaml.load without a safe loader"


def test_sources_were_found() -> None:
    assert len(SOURCES) > 20
