"""Paths an agent may read: only under configured roots, no traversal, no symlink escapes."""

from __future__ import annotations

from pathlib import Path

from fastmcp.exceptions import ToolError


def path_under_roots(raw: str, roots: list[Path], *, must_exist: bool = True) -> Path:
    """`raw` resolved (symlinks followed) and checked to lie under one of `roots`.

    A relative `raw` is taken relative to the first root.
    """
    if not roots:
        raise ToolError("no roots are configured for this agent — fix: set its `roots:` in "
                        "servers.yaml under agents:")
    if not raw or "\x00" in raw:
        raise ToolError("path is empty or contains a NUL byte")
    roots = [root.resolve() for root in roots]
    candidate = Path(raw)
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    resolved = candidate.resolve()
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        allowed = ", ".join(str(r) for r in roots)
        raise ToolError(f"{raw!r} is outside the allowed roots ({allowed}) — fix: use a path "
                        "under one of them, or add a root in servers.yaml agents:")
    if must_exist and not resolved.exists():
        raise ToolError(f"{raw!r} does not exist")
    return resolved
