"""Finding a tool in a large catalog: what `search_tools` ranks with.

Hosts drown in long tool lists, so above `gateway.tool_search_threshold` they get
`search_tools` instead (front/passthrough.py). Ranking:

* **Words**: case-folded, a few stop words dropped, abbreviations and other spellings of
  one word rewritten to one form (`k8s` -> `kubernetes`, `db` -> `database`; the small
  general vocabulary of front/tool_vocabulary.py), then lightly stemmed: plurals folded,
  -ing/-ed and a final e dropped (`restarting`, `restarted`, `restarts` -> `restart`).
  Tools' text and queries alike.
* **BM25** over each tool's server, name and description (the name counted twice: it is
  the densest text a tool has) and its parameter names. Parameter descriptions are left
  out: they repeat across a server ("AWS region" on every EC2 tool); with them top-5 on the
  labeled set of bench/catalog.py fell from 86.8 % to 84.6 %. A query also counts two of
  its words written as one when a tool has that word (`fail over` -> `failover`), and, at
  RELATED_WEIGHT, the vocabulary's related words of its own (`bounce` -> `restart`,
  `ban` -> `block`).
* **Hybrid** (`gateway.tool_search: hybrid`, only with the local embedder installed):
  LEXICAL_SHARE of the BM25 score (over the best) plus the rest of the cosine similarity
  of MiniLM embeddings (scaled between the 50th most similar tool and the most similar),
  which finds more tools described in other words, at ≈600 MB of RSS and a model load.
  The catalog's embeddings are computed once per catalog change, in a worker thread,
  reusing the vectors of texts already seen; until they are ready search answers with BM25
  alone.
* **Risk-aware**: among tools of the same relevance (scores within TIE of each other) the
  read-only ones come first, so a vague query ("nginx logs") offers the look before the
  change.

Quality on bench/catalog's 1,000 generated tools (top-1 / top-5 / MRR), on the dev set the
choices above were tuned on (queries.yaml, 182 phrasings) and on a held-out set written
before them and never tuned on (queries_holdout.yaml, 230 phrasings):

    ranking          dev                       held out
    BM25, before     64.8 % / 86.8 % / 0.738   57.4 % / 79.6 % / 0.669
    BM25             75.3 % / 92.9 % / 0.819   67.0 % / 84.8 % / 0.745
    hybrid, before   76.9 % / 92.3 % / 0.829   64.3 % / 86.1 % / 0.735
    hybrid           81.9 % / 94.5 % / 0.866   69.1 % / 87.8 % / 0.777

("before": plurals folded only, no vocabulary, reciprocal-rank fusion.) Some of the
vocabulary's words occur in the held-out phrasings only, and that set was written first:
without those entries BM25 holds out at 63.9 % / 81.7 % / 0.715 and hybrid at
66.5 % / 86.1 % / 0.755, the fairer figures for words nobody anticipated.

Index builds and embeddings run off the event loop; a BM25 query of a 1,000-tool catalog
costs about 0.06 ms (0.04 ms before the vocabulary and stemming), building its index about
22 ms (bench/catalog.py measures queries).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Container, Sequence
from typing import Any, Literal, Protocol

from orchestrator_mcp.front.tool_vocabulary import RELATED, SPELLINGS
from orchestrator_mcp.gateway import Catalog, CatalogTool

log = logging.getLogger(__name__)

SearchMode = Literal["bm25", "hybrid"]
TIE = 0.05  # relative score difference within which read-only tools go first
LEXICAL_SHARE = 0.7  # of BM25 in a hybrid score, the rest is the embeddings' similarity
FUSION_DEPTH = 50  # how many of each ranking take part in the fusion
K1, B = 1.2, 0.75  # BM25 parameters
NAME_WEIGHT = 2
RELATED_WEIGHT = 0.7  # of a query's related words (tool_vocabulary.RELATED), its own words 1
WARM_DELAY = 0.5  # seconds

_WORD = re.compile(r"[^\W_]+")
# Words that say nothing about which tool is meant; dropped from queries and tools alike.
STOP_WORDS = frozenset("a an and are as at be by for from in is it its of or the to with".split())


def _fold_plural(word: str) -> str:
    if len(word) <= 3 or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s"):
        return word[:-1]
    return word


_VOWEL = re.compile(r"[aeiouy]")


@functools.lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light stemmer: plurals folded, then -ing/-ed/-ied and a final e dropped, so that
    restarting, restarted, restarts and restart meet (as restart), and so do expire,
    expires, expired, expiring (expir). Both the tools' text and queries go through it."""
    word = _fold_plural(word)
    if word.endswith("ied") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed"):
        if word.endswith(suffix):
            base = word[:-len(suffix)]
            if len(base) < 3 or base.endswith("e") or not _VOWEL.search(base):
                return word  # string, need, speed
            if base[-1] == base[-2] and base[-1] not in "aeioulsz":
                base = base[:-1]  # running -> run, stopped -> stop
            return _fold_plural(base)  # ddosed -> ddos -> ddo, as ddos
    if word.endswith("e") and len(word) > 3:
        return _fold_plural(word[:-1])  # release, releases, released -> relea
    return word


def _spelled(word: str) -> list[str]:
    """A word in the vocabulary's one spelling (`k8s` -> `kubernetes`)."""
    spelling = SPELLINGS.get(word) or SPELLINGS.get(_fold_plural(word))
    return spelling.split() if spelling else [word]


def words(text: str) -> list[str]:
    """Search terms of a text: case-folded words of 2+ characters, abbreviations spelled
    out, stemmed."""
    normalized = unicodedata.normalize("NFKC", text).casefold()
    return [stem(s) for w in _WORD.findall(normalized) if len(w) > 1
            for s in _spelled(w) if s not in STOP_WORDS]


_RELATED = {stem(word): tuple(t for r in related for t in words(r))
            for word, related in RELATED.items()}


def query_terms(query: str, known: Container[str] = ()) -> dict[str, float]:
    """A query's terms and their weights: its own words 1, and two of them written as one
    where `known` has that word (`fail over` -> `failover`, `roll back` -> `rollback`);
    related words of the vocabulary (`bounce` -> `restart`) RELATED_WEIGHT."""
    own = words(query)
    terms = dict.fromkeys(own, 1.0)
    for first, second in zip(own, own[1:], strict=False):
        joined = stem(first + second)
        if joined in known:
            terms.setdefault(joined, 1.0)
    for term in own:
        for related in _RELATED.get(term, ()):
            terms.setdefault(related, RELATED_WEIGHT)
    return terms


def document(entry: CatalogTool) -> list[str]:
    """The terms a tool is found by."""
    tool = entry.tool
    name = words(f"{entry.server} {tool.name}")
    params = tool.input_schema.get("properties") if isinstance(tool.input_schema, dict) else None
    param_names = " ".join(params) if isinstance(params, dict) else ""
    return name * NAME_WEIGHT + words(f"{tool.title or ''} {tool.description or ''} "
                                      f"{param_names}")


def embedding_text(entry: CatalogTool) -> str:
    """What a tool's embedding is computed from: server, name as words, description."""
    name = " ".join(_WORD.findall(entry.tool.name.replace("_", " ")))
    return f"{entry.server}: {name}. {entry.tool.description or ''}"[:1000]


def read_only(entry: CatalogTool) -> bool:
    hints = entry.tool.annotations
    return bool(hints and hints.read_only_hint)


class ToolIndex:
    """BM25 over one catalog version (immutable once built)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.entries: list[CatalogTool] = list(catalog.tools.values())
        self.read_only = [read_only(e) for e in self.entries]
        docs = [document(e) for e in self.entries]
        self._lengths = [len(d) for d in docs]
        self._average = sum(self._lengths) / len(docs) if docs else 0.0
        self._postings: dict[str, list[tuple[int, int]]] = {}
        for i, doc in enumerate(docs):
            for term, count in Counter(doc).items():
                self._postings.setdefault(term, []).append((i, count))

    def __len__(self) -> int:
        return len(self.entries)

    def bm25(self, query: str) -> dict[int, float]:
        """Tool position -> BM25 score, for tools sharing a term with the query."""
        scores: dict[int, float] = {}
        n = len(self.entries)
        for term, weight in query_terms(query, self._postings).items():
            postings = self._postings.get(term)
            if not postings:
                continue
            idf = math.log((n - len(postings) + 0.5) / (len(postings) + 0.5) + 1.0)
            for i, count in postings:
                norm = K1 * (1 - B + B * self._lengths[i] / self._average)
                scores[i] = scores.get(i, 0.0) + weight * idf * count * (K1 + 1) / (count + norm)
        return scores


def fuse(lexical: dict[int, float], similarity: Sequence[float]) -> dict[int, float]:
    """Hybrid scores: LEXICAL_SHARE of the BM25 score over the best one, plus the rest of
    the cosine similarity scaled to 0..1 between the FUSION_DEPTH-th most similar tool and
    the most similar, for the best FUSION_DEPTH tools of each ranking."""
    by_bm25 = sorted(lexical, key=lambda i: -lexical[i])[:FUSION_DEPTH]
    by_vector = sorted(range(len(similarity)), key=lambda i: -similarity[i])[:FUSION_DEPTH]
    best = lexical[by_bm25[0]] if by_bm25 else 1.0
    high, low = similarity[by_vector[0]], similarity[by_vector[-1]]
    spread = high - low or 1.0
    return {i: LEXICAL_SHARE * lexical.get(i, 0.0) / best
            + (1 - LEXICAL_SHARE) * max(0.0, (similarity[i] - low) / spread)
            for i in {*by_bm25, *by_vector}}


def rank(scores: dict[int, float], read_only_flags: Sequence[bool], limit: int,
         tie: float = TIE) -> list[tuple[int, float]]:
    """The best `limit` tools, read-only ones first among scores within `tie` (relative)
    of each other: each read-only tool may move up past the non-read-only ones directly
    above it whose score is at most (1 + tie) times its own."""
    ordered = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:limit * 2 + 8]
    if tie > 0:
        for pos in range(1, len(ordered)):
            j = pos
            i, score = ordered[j]
            while (j > 0 and read_only_flags[i] and not read_only_flags[ordered[j - 1][0]]
                   and ordered[j - 1][1] <= score * (1 + tie)):
                ordered[j - 1], ordered[j] = ordered[j], ordered[j - 1]
                j -= 1
    return ordered[:limit]


class Embed(Protocol):
    async def __call__(self, texts: list[str]) -> list[list[float]]: ...


class ToolSearch:
    """Ranks the gateway's current catalog for a query, by `mode`; `embed` (hybrid only)
    turns texts into normalised vectors. Each catalog version gets its index in a worker
    thread, when it is first searched or `warm` is called (on catalog changes)."""

    def __init__(self, catalog: Callable[[], Catalog], mode: SearchMode = "bm25",
                 embed: Embed | None = None) -> None:
        if mode == "hybrid" and embed is None:
            raise ValueError("hybrid tool search needs an embedder")
        self._catalog = catalog
        self.mode: SearchMode = mode
        self._embed = embed
        self._index: ToolIndex | None = None
        self._building: asyncio.Future[ToolIndex] | None = None
        self._building_for: Catalog | None = None
        self._vectors: dict[str, list[float]] = {}  # embedding text -> vector, kept across versions
        self._matrix: tuple[ToolIndex, Any] | None = None  # an index and its tools' vectors
        self._background: set[asyncio.Future[Any]] = set()
        self._embedding: asyncio.Future[None] | None = None
        self._warming: asyncio.Future[None] | None = None
        self._failed_for: Catalog | None = None  # embedding it failed: not retried

    def warm(self) -> None:
        """Index the catalog (and embed it, in hybrid mode) soon: servers connecting at
        start change the catalog many times a second, so this waits WARM_DELAY for the
        changes to settle and then indexes only the catalog current by then."""
        if self._warming is None or self._warming.done():
            self._warming = asyncio.ensure_future(self._warm_later())
            self._keep(self._warming)

    async def _warm_later(self) -> None:
        await asyncio.sleep(WARM_DELAY)
        await self.index()

    def _keep(self, future: asyncio.Future[Any]) -> None:
        self._background.add(future)
        future.add_done_callback(self._background.discard)

    async def index(self) -> ToolIndex:
        catalog = self._catalog()
        if self._index is None or self._index.catalog is not catalog:
            if self._building is None or self._building_for is not catalog:
                self._building_for = catalog
                self._building = asyncio.ensure_future(asyncio.to_thread(ToolIndex, catalog))
            index = await asyncio.shield(self._building)
            if self._index is None or index.catalog is self._catalog():
                self._index = index
        if self.mode == "hybrid" and not self.vectors_ready and (
                self._embedding is None or self._embedding.done()) and (
                self._failed_for is not self._index.catalog):
            self._embedding = asyncio.ensure_future(self._embed_latest())
            self._keep(self._embedding)
        return self._index

    @property
    def vectors_ready(self) -> bool:
        return self._matrix is not None and self._matrix[0] is self._index

    async def embedded(self) -> None:
        """Wait until the current catalog's embeddings are computed (tests, benchmarks)."""
        await self.index()
        while self.mode == "hybrid" and not self.vectors_ready:
            if self._embedding is not None:
                await asyncio.shield(self._embedding)
            index = await self.index()
            if self._failed_for is index.catalog:
                raise RuntimeError("tool embeddings could not be computed (see the log)")

    async def _embed_latest(self) -> None:
        """Embed the newest catalog version's tools (only texts not seen before), again
        while the catalog changed meanwhile."""
        assert self._embed is not None
        index = self._index
        try:
            while not self.vectors_ready:
                index = self._index
                assert index is not None
                texts = [embedding_text(e) for e in index.entries]
                new = sorted({t for t in texts if t not in self._vectors})
                if new:
                    for text, vector in zip(new, await self._embed(new), strict=True):
                        self._vectors[text] = vector
                matrix = await asyncio.to_thread(_matrix, [self._vectors[t] for t in texts])
                self._matrix = (index, matrix)
                if self._index is index and index.catalog is not self._catalog():
                    self._index = await self.index()
        except Exception:  # noqa: BLE001 - search goes on with BM25 alone
            self._failed_for = index.catalog if index is not None else None
            log.exception("tool embeddings could not be computed; tool search uses BM25 "
                          "until the catalog changes")

    async def search(self, query: str, limit: int) -> tuple[list[tuple[CatalogTool, float]],
                                                          SearchMode]:
        """The best tools for `query` and how they were ranked ("hybrid" only once the
        catalog's embeddings are ready)."""
        index = await self.index()
        lexical = index.bm25(query)
        ranking: SearchMode = "bm25"
        scores = lexical
        matrix = self._matrix
        if self.mode == "hybrid" and matrix is not None and matrix[0] is index and len(index):
            assert self._embed is not None
            (vector,) = await self._embed([query])
            similarity = (matrix[1] @ _array(vector)).tolist()
            scores = fuse(lexical, similarity)
            ranking = "hybrid"
        ranked = rank(scores, index.read_only, limit)
        return [(index.entries[i], score) for i, score in ranked], ranking


def _array(vector: list[float]) -> Any:
    import numpy

    return numpy.asarray(vector, dtype=numpy.float32)


def _matrix(vectors: list[list[float]]) -> Any:
    import numpy

    return numpy.asarray(vectors, dtype=numpy.float32).reshape(len(vectors), -1)

