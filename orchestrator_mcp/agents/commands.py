"""Running host commands for agents: argument lists, timeouts, capped output, never a shell."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from fastmcp.exceptions import ToolError
from pydantic import BaseModel


class CommandResult(BaseModel):
    command: list[str]
    exit_code: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    truncated: bool = False


def require_binary(name: str, install_hint: str = "") -> str:
    """The full path of `name`, or a clear tool error saying it is not on this host."""
    path = shutil.which(name)
    if path is None:
        hint = f" — install {install_hint}" if install_hint else ""
        raise ToolError(f"{name} is not available on this host{hint}")
    return path


def _cut(data: bytes, limit: int) -> tuple[str, bool]:
    text = data[:limit].decode("utf-8", errors="replace")
    return text, len(data) > limit


async def run_command(
    argv: Sequence[str], *, timeout: float, max_output: int = 1_000_000,
    env: Mapping[str, str] | None = None, cwd: Path | None = None,
) -> CommandResult:
    """Run `argv` (no shell) and return its output; killed when `timeout` seconds pass."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=cwd,
        env={**os.environ, **env} if env is not None else None, start_new_session=True)
    timed_out = False
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        timed_out = True
        process.kill()
        stdout, stderr = await process.communicate()
    except asyncio.CancelledError:
        process.kill()
        await process.wait()
        raise
    out, cut_out = _cut(stdout, max_output)
    err, cut_err = _cut(stderr, max_output)
    return CommandResult(command=list(argv), exit_code=None if timed_out else process.returncode,
                         stdout=out, stderr=err, seconds=round(time.monotonic() - started, 3),
                         timed_out=timed_out, truncated=cut_out or cut_err)
