"""MCP tools made acceptable to each provider's tool format.

Input schemas: every provider wants an object at the top, and OpenAI refuses `anyOf`,
`oneOf`, `allOf`, `enum` and `not` there:

    {"anyOf": [{"type": "object", "properties": {"a": ...}, "required": ["a"]},
               {"type": "object", "properties": {"b": ...}, "required": ["b"]}]}
    →  {"type": "object", "properties": {"a": ..., "b": ...}}

Meta keys (`$schema`, `$id`, `$comment`) go, at every level that is a schema (never inside
`properties`, where they would be property names, nor inside `default`/`enum` values).

Tool names: providers accept `^[A-Za-z0-9_-]{1,64}$`. Catalog names already match; other
names are rewritten and mapped back by `ToolNames`.
"""

from __future__ import annotations

import re
from typing import Any, Literal

_META = frozenset({"$schema", "$id", "$comment"})
_TOP_FORBIDDEN = ("anyOf", "oneOf", "allOf", "enum", "not", "const")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_ONE = ("not", "if", "then", "else", "contains", "propertyNames",
               "additionalProperties", "unevaluatedProperties", "additionalItems")
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
NAME_LIMIT = 64


def clean_schema(schema: Any) -> dict[str, Any]:
    """A tool's input schema with an object at the top and no meta keys."""
    cleaned = _strip(schema) if isinstance(schema, dict) else {}
    if any(k in cleaned for k in ("anyOf", "oneOf", "allOf")):
        cleaned = _merge_top_variants(cleaned)
    for key in _TOP_FORBIDDEN:
        cleaned.pop(key, None)
    cleaned["type"] = "object"
    if not isinstance(cleaned.get("properties"), dict):
        cleaned["properties"] = {}
    required = cleaned.get("required")
    if required is not None:
        names = [r for r in required if isinstance(r, str)] if isinstance(required, list) else []
        if names:
            cleaned["required"] = names
        else:
            cleaned.pop("required")
    return cleaned


def _strip(schema: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _META:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            value = {k: _strip(v) if isinstance(v, dict) else v for k, v in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            value = [_strip(v) if isinstance(v, dict) else v for v in value]
        elif key in _SCHEMA_ONE and isinstance(value, dict):
            value = _strip(value)
        elif key == "items":
            if isinstance(value, dict):
                value = _strip(value)
            elif isinstance(value, list):
                value = [_strip(v) if isinstance(v, dict) else v for v in value]
        out[key] = value
    return out


def _merge_top_variants(schema: dict[str, Any]) -> dict[str, Any]:
    """One object out of top-level variants: every property any variant has; required are
    those every `anyOf`/`oneOf` variant requires, plus all of `allOf`'s."""
    merged = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf", "allOf")}
    properties: dict[str, Any] = dict(merged.get("properties") or {})
    required: list[str] = list(merged.get("required") or [])

    def objects(key: str) -> list[dict[str, Any]]:
        return [v for v in schema.get(key) or [] if isinstance(v, dict)]

    for variant in objects("allOf"):
        for name, prop in (variant.get("properties") or {}).items():
            properties.setdefault(name, prop)
        required += [r for r in variant.get("required") or [] if r not in required]
    for key in ("anyOf", "oneOf"):
        variants = objects(key)
        for variant in variants:
            for name, prop in (variant.get("properties") or {}).items():
                properties.setdefault(name, prop)
        if variants:
            common = set.intersection(*(set(v.get("required") or []) for v in variants))
            required += [r for r in sorted(common) if r not in required]
    merged["properties"] = properties
    if required:
        merged["required"] = required
    return merged


class UnresolvedRef(ValueError):
    """A reference to no definition, or a cycle (with `unresolved="raise"`)."""


def inline_refs(schema: dict[str, Any], depth: int = 8,
                unresolved: Literal["open", "raise"] = "open") -> dict[str, Any]:
    """Local `#/$defs/X` references replaced by their definitions, for providers that drop
    `$defs` (Ollama) and for our own tools' listings (orchestrator_mcp/schemas.py); a cycle,
    a reference deeper than `depth` or to no definition becomes an open object, or raises
    UnresolvedRef."""
    defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}

    def walk(value: Any, level: int) -> Any:
        if isinstance(value, list):
            return [walk(v, level) for v in value]
        if not isinstance(value, dict):
            return value
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith(("#/$defs/", "#/definitions/")):
            target = defs.get(ref.rsplit("/", 1)[1])
            if target is None or level >= depth:
                if unresolved == "raise":
                    raise UnresolvedRef(ref)
                return {"type": "object"}
            siblings = {k: v for k, v in value.items() if k != "$ref"}
            return walk({**target, **siblings}, level + 1)
        return {k: walk(v, level) for k, v in value.items() if k not in ("$defs", "definitions")}

    return walk(schema, 0)


def safe_tool_name(name: str, limit: int = NAME_LIMIT) -> str:
    return _BAD_NAME_CHARS.sub("_", name)[:limit] or "tool"


class ToolNames:
    """Catalog names ↔ names a provider accepts. Valid names map to themselves."""

    def __init__(self, names: list[str], limit: int = NAME_LIMIT) -> None:
        self._out: dict[str, str] = {}
        self._back: dict[str, str] = {}
        # Valid names first, so they keep their own spelling when a rewritten one collides.
        for name in sorted(names, key=lambda n: safe_tool_name(n, limit) != n):
            safe = safe_tool_name(name, limit)
            n = 2
            while safe in self._back and self._back[safe] != name:
                suffix = f"_{n}"
                safe = safe_tool_name(name, limit - len(suffix)) + suffix
                n += 1
            self._out[name] = safe
            self._back[safe] = name

    def to_provider(self, name: str) -> str:
        return self._out.get(name) or safe_tool_name(name)

    def from_provider(self, name: str) -> str:
        return self._back.get(name, name)
