"""The generated ops catalog of bench/catalog.py: domains.yaml -> 25 servers, 1,000 tools.

    tools = generate(load_spec(), seed=18)      # {"k8s": [ToolSpec, ...], ...}

Resources' CRUD verbs are phrased from a few templates chosen by a random generator seeded
with the seed and the tool's name, so the same seed always gives the same catalog. When the
spec yields fewer than `total` tools, the missing CRUD verbs of resources are added, picked
by the same seeded generator, until the count is exact; more than `total` is an error.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SPEC = Path(__file__).resolve().parent / "domains.yaml"
TOTAL = 1000
SEED = 18
CRUD = ("list", "get", "describe", "create", "update", "delete")
OPTIONAL = {"since", "until", "label_selector", "tags", "reason"}  # shared params never required

# {noun}, {nouns}, {about}, {scope} are filled in; each verb has a few phrasings.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "list": ("List {nouns}{scope}, with {about}.",
             "List all {nouns}{scope}; each entry shows {about}.",
             "Return the {nouns}{scope} with {about}, filtered by name or label."),
    "get": ("Get one {noun} by name: {about}.",
            "Fetch a single {noun} and return {about}.",
            "Show a {noun}: {about}."),
    "describe": ("Describe a {noun} in detail: {about}, plus recent events and conditions.",
                 "Detailed view of one {noun} with {about} and related objects.",
                 "Describe a {noun}, including {about} and its full configuration."),
    "create": ("Create a {noun}.", "Create a new {noun} from the given settings.",
               "Add a {noun}."),
    "update": ("Update the settings of an existing {noun}.",
               "Change an existing {noun} (only the given fields).",
               "Modify a {noun} in place."),
    "delete": ("Delete a {noun}. This cannot be undone.", "Remove a {noun} permanently.",
               "Delete a {noun}; anything depending on it stops working."),
}
RISK = {"list": "ro", "get": "ro", "describe": "ro", "create": "write", "update": "destructive",
        "delete": "destructive"}
# Servers whose authors annotated only the read-only tools (common in the wild): their other
# tools carry no annotations, which MCP reads as "may be destructive".
PARTLY_ANNOTATED = {"cdn"}


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_schema: dict[str, Any]
    risk: str  # "ro", "write" or "destructive"
    annotations: dict[str, Any] | None = field(default=None)


def load_spec(path: Path = SPEC) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def _param(spec: dict[str, Any], item: Any) -> tuple[str, dict[str, Any]]:
    """A params entry: a shared name from `params:`, or an inline {name: schema}."""
    if isinstance(item, str):
        return item, dict(spec["params"][item])
    ((name, schema),) = item.items()
    return name, dict(schema)


def _schema(spec: dict[str, Any], scope: list[Any], params: list[Any],
            key: tuple[str, str] | None) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    required: list[str] = []
    if key is not None:
        properties[key[0]] = {"type": "string", "description": key[1]}
        required.append(key[0])
    for item in params:
        name, schema = _param(spec, item)
        properties[name] = schema
        if "default" not in schema and name not in OPTIONAL:
            required.append(name)
    for item in scope:
        name, schema = _param(spec, item)
        properties.setdefault(name, schema)
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


def _annotations(server: str, risk: str) -> dict[str, Any] | None:
    if risk == "ro":
        return {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": True}
    if server in PARTLY_ANNOTATED:
        return None
    return {"readOnlyHint": False, "destructiveHint": risk == "destructive",
            "idempotentHint": False, "openWorldHint": True}


def _article(noun: str) -> str:
    return "an" if noun[0].lower() in "aeio" else "a"


def _crud_tool(spec: dict[str, Any], server: str, resource: str, res: dict[str, Any],
               verb: str, seed: int) -> ToolSpec:
    noun = res.get("noun") or resource.replace("_", " ")
    nouns = res["plural"].replace("_", " ") if "noun" not in res else f"{noun}s"
    name = f"list_{res['plural']}" if verb == "list" else f"{verb}_{resource}"
    rng = random.Random(f"{seed}:{server}:{name}")
    scope_text = f" in a {spec['servers'][server]['title']} scope" if rng.random() < 0.3 else ""
    about = res.get("about") or "its main fields"
    text = rng.choice(TEMPLATES[verb]).replace(" a {noun}", f" {_article(noun)} {{noun}}")
    text = text.format(noun=noun, nouns=nouns, about=about,
                                              scope=scope_text)
    scope = spec["servers"][server].get("scope", [])
    if verb == "list":
        schema = _schema(spec, scope, ["label_selector", "limit"] if server == "k8s"
                         else ["limit"], None)
    else:
        extra: list[Any] = []
        if verb in ("create", "update"):
            extra = [{"settings": {"type": "object", "description": f"fields of the {noun}"}}]
        if verb == "delete" and rng.random() < 0.5:
            extra = ["force"]
        if verb in ("create", "update", "delete") and rng.random() < 0.4:
            extra.append("dry_run")
        schema = _schema(spec, scope, extra, ("name", f"name of the {noun}"))
    risk = RISK[verb]
    return ToolSpec(name, text, schema, risk, _annotations(server, risk))


def _extra_tool(spec: dict[str, Any], server: str, name: str, extra: dict[str, Any]
                ) -> ToolSpec:
    risk = "ro" if extra.get("ro") else extra.get("risk", "destructive")
    scope = spec["servers"][server].get("scope", [])
    text = extra["text"].rstrip(".") + "."
    schema = _schema(spec, scope, extra.get("params", []), None)
    return ToolSpec(name, text, schema, risk, _annotations(server, risk))


def generate(spec: dict[str, Any], seed: int = SEED, total: int = TOTAL
             ) -> dict[str, list[ToolSpec]]:
    servers: dict[str, list[ToolSpec]] = {}
    missing: list[tuple[str, str, str]] = []  # (server, resource, verb) not in the spec
    for server, body in spec["servers"].items():
        tools: list[ToolSpec] = []
        for resource, res in body["resources"].items():
            verbs = res.get("verbs", [])
            for verb in verbs:
                tools.append(_crud_tool(spec, server, resource, res, verb, seed))
            for name, extra in (res.get("extra") or {}).items():
                tools.append(_extra_tool(spec, server, name, extra))
            if verbs:  # resources with CRUD verbs could have the others too
                missing += [(server, resource, v) for v in CRUD if v not in verbs]
        servers[server] = tools
    count = sum(len(t) for t in servers.values())
    if count > total:
        raise ValueError(f"{SPEC.name} yields {count} tools, more than {total}: remove some")
    rng = random.Random(seed)
    for server, resource, verb in rng.sample(missing, total - count):
        res = spec["servers"][server]["resources"][resource]
        servers[server].append(_crud_tool(spec, server, resource, res, verb, seed))
    for server, tools in servers.items():
        names = [t.name for t in tools]
        if len(names) != len(set(names)):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"server {server!r} has duplicate tool names: {dupes}")
    return servers
