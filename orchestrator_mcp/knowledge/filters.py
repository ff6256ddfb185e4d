"""Validated names and safely built LanceDB where-clauses.

Filter values never reach SQL as code: every value becomes a single-quoted literal with its
quotes doubled, and keys must match ^[A-Za-z0-9_]+$. Metadata is stored twice: as JSON for
display, and as a list of `key=<json value>` tokens that equality filters test with
`array_has`, so a filter is a comparison of whole strings, never a pattern.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator_mcp.knowledge.models import KnowledgeError, MetadataValue

COLLECTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
METADATA_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")
RESERVED_KEYS = {"source": "prefix of the chunk's source path",
                 "document_id": "the document's id"}
MAX_DOCUMENT_ID = 512


def check_collection(name: str) -> str:
    if not isinstance(name, str) or not COLLECTION_NAME.match(name):
        raise KnowledgeError(f"collection name {name!r} is invalid: use 1-64 letters, digits, "
                             "'_' or '-', like 'runbooks'")
    return name


def check_document_id(doc_id: str) -> str:
    if not doc_id or not doc_id.strip() or len(doc_id) > MAX_DOCUMENT_ID:
        raise KnowledgeError(f"document id must be 1-{MAX_DOCUMENT_ID} characters, "
                             "not blank")
    if any(ord(c) < 32 for c in doc_id):
        raise KnowledgeError("document id must not contain control characters")
    return doc_id


def _normal(value: Any, key: str) -> MetadataValue:
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        if isinstance(value, float) and value != value:
            raise KnowledgeError(f"metadata '{key}' is NaN; use a number, string or boolean")
        return int(value) if isinstance(value, float) and value.is_integer() else value
    raise KnowledgeError(f"metadata '{key}' is a {type(value).__name__}; values must be "
                         "strings, numbers or booleans")


def check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, MetadataValue]:
    clean: dict[str, MetadataValue] = {}
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not METADATA_KEY.match(key):
            raise KnowledgeError(f"metadata key {key!r} is invalid: use 1-64 letters, digits "
                                 "or '_'")
        if key in RESERVED_KEYS:
            raise KnowledgeError(f"metadata key '{key}' is reserved (it filters on the "
                                 f"{RESERVED_KEYS[key]}); choose another name")
        clean[key] = _normal(value, key)
    return clean


def tokens(metadata: Mapping[str, MetadataValue]) -> list[str]:
    return [f"{key}={json.dumps(value)}" for key, value in sorted(metadata.items())]


def literal(value: str) -> str:
    """A SQL string literal: single quotes, inner quotes doubled, NUL refused."""
    if "\x00" in value:
        raise KnowledgeError("filter values must not contain NUL characters")
    return "'" + value.replace("'", "''") + "'"


def in_list(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(literal(v) for v in values)})"


def where_clause(filters: Mapping[str, Any] | None) -> str | None:
    """`{"source": "runbooks/disk", "team": "sre"}` ->
    `starts_with(source, 'runbooks/disk') AND array_has(meta, 'team="sre"')`."""
    parts: list[str] = []
    for key, value in sorted((filters or {}).items()):
        if not isinstance(key, str) or not METADATA_KEY.match(key):
            raise KnowledgeError(f"filter key {key!r} is invalid: use a metadata key (letters, "
                                 "digits, '_'), 'source' or 'document_id'")
        if key == "source":
            if not isinstance(value, str):
                raise KnowledgeError("filter 'source' must be a string (a path prefix)")
            parts.append(f"starts_with(source, {literal(value)})")
        elif key == "document_id":
            if not isinstance(value, str):
                raise KnowledgeError("filter 'document_id' must be a string")
            parts.append(f"doc_id = {literal(value)}")
        else:
            token = f"{key}={json.dumps(_normal(value, key))}"
            parts.append(f"array_has(meta, {literal(token)})")
    return " AND ".join(parts) or None
