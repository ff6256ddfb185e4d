"""MCP input schemas and tool names made acceptable to every provider."""

from __future__ import annotations

import re

import pytest

from orchestrator_mcp.llm.schemas import ToolNames, clean_schema, inline_refs
from orchestrator_mcp.llm.transport import redact, retry_after_seconds

EMPTY = {"type": "object", "properties": {}}


@pytest.mark.parametrize("schema", [None, {}, [], "x", {"type": "string"},
                                    {"type": ["object", "null"]}, {"properties": []}])
def test_anything_becomes_an_object(schema: object) -> None:
    assert clean_schema(schema) == EMPTY


def test_meta_keys_go_at_schema_levels_only() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "urn:x",
        "type": "object",
        "properties": {
            # A property may be called "$id"; it is data, not a meta key.
            "$id": {"type": "string", "$comment": "dropped"},
            "tags": {"type": "array", "items": {"$schema": "x", "type": "string"}},
            "mode": {"anyOf": [{"const": "a", "$comment": "c"}, {"type": "null"}],
                     "default": {"$id": "kept, it is a value"}},
        },
        "$defs": {"Host": {"$id": "h", "type": "object"}},
        "additionalProperties": {"$comment": "x", "type": "string"},
    }
    assert clean_schema(schema) == {
        "type": "object",
        "properties": {
            "$id": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "mode": {"anyOf": [{"const": "a"}, {"type": "null"}],
                     "default": {"$id": "kept, it is a value"}},
        },
        "$defs": {"Host": {"type": "object"}},
        "additionalProperties": {"type": "string"},
    }


def test_top_level_variants_merge_into_one_object() -> None:
    schema = {"anyOf": [
        {"type": "object", "properties": {"id": {"type": "integer"}, "q": {"type": "string"}},
         "required": ["id", "q"]},
        {"type": "object", "properties": {"name": {"type": "string"},
                                          "q": {"type": "string"}},
         "required": ["name", "q"]}],
        "description": "find a host"}
    assert clean_schema(schema) == {
        "type": "object", "description": "find a host",
        "properties": {"id": {"type": "integer"}, "q": {"type": "string"},
                       "name": {"type": "string"}},
        "required": ["q"]}


def test_top_level_all_of_requires_everything() -> None:
    schema = {"allOf": [{"properties": {"a": {}}, "required": ["a"]},
                        {"properties": {"b": {}}, "required": ["b"]}], "enum": [1]}
    assert clean_schema(schema) == {"type": "object", "properties": {"a": {}, "b": {}},
                                    "required": ["a", "b"]}


def test_required_must_be_a_list_of_names() -> None:
    assert clean_schema({"type": "object", "required": "a"}) == EMPTY
    assert clean_schema({"type": "object", "required": ["a", 3]})["required"] == ["a"]


def test_inline_refs_resolves_nesting_and_stops_at_cycles() -> None:
    schema = {"type": "object",
              "properties": {"tree": {"$ref": "#/$defs/Node", "description": "root"},
                             "missing": {"$ref": "#/$defs/Nope"}},
              "$defs": {"Node": {"type": "object", "properties": {
                  "child": {"$ref": "#/$defs/Node"}}}}}
    out = inline_refs(schema, depth=2)
    assert "$defs" not in out
    tree = out["properties"]["tree"]
    assert tree["description"] == "root"
    assert tree["properties"]["child"]["properties"]["child"] == {"type": "object"}
    assert out["properties"]["missing"] == {"type": "object"}


def test_tool_names_round_trip_and_stay_unique() -> None:
    long = "a" * 80
    names = ToolNames(["fs.read", "fs_read", "ok-name", long, "b" * 64 + ".x"])
    assert names.to_provider("fs_read") == "fs_read"  # valid names keep their spelling
    assert names.to_provider("fs.read") == "fs_read_2"
    assert names.to_provider("ok-name") == "ok-name"
    rule = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
    for original in ["fs.read", "fs_read", "ok-name", long, "b" * 64 + ".x"]:
        provided = names.to_provider(original)
        assert rule.match(provided), provided
        assert names.from_provider(provided) == original
    assert names.from_provider("unknown_tool") == "unknown_tool"


def test_redact_hides_given_secrets_and_key_shapes() -> None:
    text = ("key sk-proj-abcdefgh12345678 and AKIAABCDEFGHIJKLMNOP and "
            "Authorization: Bearer tok.en-value and my-own-secret")
    out = redact(text, ["my-own-secret", None, ""])
    assert "abcdefgh" not in out and "AKIAABCD" not in out and "tok.en" not in out
    assert "my-own-secret" not in out
    assert out.count("***") == 4


@pytest.mark.parametrize(("headers", "expected"), [
    ({}, None), ({"Retry-After": "2"}, 2.0), ({"retry-after": "1.5"}, 1.5),
    ({"retry-after-ms": "250"}, 0.25), ({"Retry-After": "999"}, 60.0),
    ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0), ({"Retry-After": "soon"}, None)])
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_seconds(headers) == expected
