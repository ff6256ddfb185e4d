"""Templates of the console: Jinja2 with autoescape on for every file (tool arguments and
results are hostile text), and the few filters the pages use."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
MAX_SHOWN_CHARS = 20_000  # one argument or result shown in a page


def age(at: float | None, now: float | None = None) -> str:
    """How long ago, in the largest unit that fits: '12 s', '5 min', '3 h', '2 d'."""
    if at is None:
        return ""
    seconds = max(0, int((now or time.time()) - at))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def when(at: float | None) -> str:
    if at is None:
        return ""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pretty(value: Any) -> str:
    """JSON for people, cut to MAX_SHOWN_CHARS (escaping is the template's job)."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
        except (ValueError, RecursionError):
            text = repr(value)
    if len(text) > MAX_SHOWN_CHARS:
        text = text[:MAX_SHOWN_CHARS] + f"\n… ({len(text) - MAX_SHOWN_CHARS} more characters)"
    return text


def cost(value: float | None) -> str:
    if value is None:
        return "unpriced"
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"


@cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(
        enabled_extensions=("html",), default_for_string=True, default=True))
    env.filters.update(age=age, when=when, pretty=pretty, cost=cost)
    return env


async def render(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A template as an HTML answer, rendered off the event loop (a run's history can be
    long)."""
    html = await asyncio.to_thread(environment().get_template(name).render, **context)
    return HTMLResponse(html, status_code=status_code)
