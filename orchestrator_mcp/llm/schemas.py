"""MCP input schemas made acceptable to each provider's tool format."""

from __future__ import annotations

import re
from typing import Any

# Keys some providers reject in function parameters; they carry no constraint the model
# needs.
_DROP = {"$schema", "$id", "$comment", "examples"}
_NAME = re.compile(r"[^A-Za-z0-9_-]")


def clean_schema(schema: dict[str, Any] | None) -> dict[str, Any]:
    """A JSON Schema with an object at the top and no meta keys, recursively."""
    cleaned = _strip(schema or {})
    if cleaned.get("type") != "object":
        cleaned = {"type": "object", "properties": cleaned.get("properties", {}),
                   **({"required": cleaned["required"]} if "required" in cleaned else {})}
    cleaned.setdefault("properties", {})
    return cleaned


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in _DROP}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def safe_tool_name(name: str, limit: int = 64) -> str:
    """Catalog names already match ^[A-Za-z0-9_-]{1,64}$; this guards other callers."""
    return _NAME.sub("_", name)[:limit] or "tool"
