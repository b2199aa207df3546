"""The systems bench/speed.py compares, behind one build/query protocol.

Every adapter is built from the same corpus (unit vectors and their texts) and
``build`` returns the seconds spent adding, measured around the adding calls only
(creating an empty index or collection is not counted). ``searcher(...)`` then gives a
function that answers query ``j`` with the corpus rows found, best first; what it is
handed (query vectors, query texts, an open memory) is what that system would get.
"""

from __future__ import annotations

import gc
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bench.speed_data import BLOCK, DIM, K, text_index
from sem_mem import SemanticMemory
from sem_mem.embedders.base import Embedder

M, EF_CONSTRUCTION, EF = 16, 100, 64  # Sem-Mem's defaults, used for every HNSW here

Search = Callable[[int], list[int]]


class System(Protocol):
    """What every compared system offers: build from the corpus, then release."""

    def build(self, corpus: np.ndarray, texts: list[str]) -> float:
        """Add the whole corpus; the seconds spent adding."""
        ...

    def close(self) -> None: ...


class NumpyExact:
    """One matrix-vector product + argpartition: the physical baseline and ground truth."""

    def __init__(self) -> None:
        self.corpus = np.zeros((0, DIM), dtype=np.float32)

    def build(self, corpus: np.ndarray, texts: list[str]) -> float:
        self.corpus = corpus
        return 0.0

    def searcher(self, queries: np.ndarray) -> Search:
        corpus = self.corpus

        def call(j: int) -> list[int]:
            sims = corpus @ queries[j]
            top = np.argpartition(-sims, K - 1)[:K]
            return top[np.argsort(-sims[top])].tolist()  # type: ignore[no-any-return]

        return call

    def close(self) -> None:
        self.corpus = np.zeros((0, DIM), dtype=np.float32)


class Hnswlib:
    """Raw hnswlib with Sem-Mem's HNSW parameters (cosine space, 2 threads to build)."""

    def __init__(self) -> None:
        self.index: Any = None

    def build(self, corpus: np.ndarray, texts: list[str]) -> float:
        import hnswlib

        index = hnswlib.Index(space="cosine", dim=DIM)
        index.init_index(max_elements=len(corpus), ef_construction=EF_CONSTRUCTION, M=M)
        start = time.perf_counter()
        index.add_items(corpus, np.arange(len(corpus)), num_threads=2)
        seconds = time.perf_counter() - start
        self.index = index
        return seconds

    def searcher(self, queries: np.ndarray, k: int, ef: int) -> Search:
        index = self.index

        def call(j: int) -> list[int]:
            index.set_ef(ef)
            labels, _ = index.knn_query(queries[j : j + 1], k=k, num_threads=1)
            return labels[0].tolist()  # type: ignore[no-any-return]

        return call

    def save(self, path: Path) -> None:
        self.index.save_index(str(path))

    def close(self) -> None:
        self.index = None


class SemMem:
    """Sem-Mem through its public API: ``remember_batch`` in calls of BLOCK texts.

    ``build`` opens the store, remembers and closes it (the close is not timed); the
    corpus vectors reach it through the embedder (a ``FreeEmbedder`` holds them).
    """

    def __init__(self, path: Path, embedder: Embedder, *, dedupe: bool = False) -> None:
        self.path, self.embedder, self.dedupe = path, embedder, dedupe

    def open(self, embedder: Embedder | None = None) -> SemanticMemory:
        return SemanticMemory(str(self.path), embedder=embedder or self.embedder)

    def build(self, corpus: np.ndarray, texts: list[str]) -> float:
        shutil.rmtree(self.path, ignore_errors=True)
        memory = self.open()
        start = time.perf_counter()
        for s in range(0, len(texts), BLOCK):
            memory.remember_batch(texts[s : s + BLOCK], dedupe=self.dedupe)
        seconds = time.perf_counter() - start
        memory.close()
        return seconds

    @staticmethod
    def searcher(memory: SemanticMemory, qtexts: list[str], mode: str) -> Search:
        def call(j: int) -> list[int]:
            results = memory.recall(qtexts[j], K, mode=mode)  # type: ignore[arg-type]
            return [text_index(r.text)[1] for r in results]

        return call

    def close(self) -> None:
        pass


def chroma_client(path: Path) -> Any:
    import chromadb
    from chromadb.config import Settings

    return chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))


class Chroma:
    """chromadb's PersistentClient with the same HNSW parameters (space cosine)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.client: Any = None
        self.collection: Any = None

    def build(self, corpus: np.ndarray, texts: list[str]) -> float:
        self.close()
        client = chroma_client(self.path)
        collection = client.create_collection(
            "bench",
            embedding_function=None,
            configuration={
                "hnsw": {
                    "space": "cosine",
                    "max_neighbors": M,
                    "ef_construction": EF_CONSTRUCTION,
                    "ef_search": EF,
                }
            },
        )
        step = min(BLOCK, client.get_max_batch_size())
        start = time.perf_counter()
        for s in range(0, len(corpus), step):
            collection.add(
                ids=[str(i) for i in range(s, min(s + step, len(corpus)))],
                embeddings=corpus[s : s + step],
                documents=texts[s : s + step],
            )
        seconds = time.perf_counter() - start
        self.client, self.collection = client, collection
        return seconds

    def searcher(self, queries: np.ndarray) -> Search:
        collection = self.collection

        def call(j: int) -> list[int]:
            out = collection.query(query_embeddings=queries[j : j + 1], n_results=K)
            return [int(i) for i in out["ids"][0]]

        return call

    def release(self) -> None:
        """Drop the handles (the files stay, for the disk figures and the cold open)."""
        self.client = self.collection = None

    def close(self) -> None:
        """Forget chromadb's cached client for the folder and delete the folder."""
        from chromadb.api.client import SharedSystemClient

        self.release()
        gc.collect()
        SharedSystemClient.clear_system_cache()
        shutil.rmtree(self.path, ignore_errors=True)


class Mem0:
    """mem0 (``infer=False``, its default local Qdrant) with the precomputed vectors.

    Its embedder is replaced by one returning the same vectors; its LLM points at an
    unreachable URL and is never called (``infer=False``).
    """

    def __init__(self, home: Path, corpus: np.ndarray, queries: np.ndarray) -> None:
        import os

        os.environ["MEM0_TELEMETRY"] = "False"  # read when mem0 is first imported
        os.environ["MEM0_DIR"] = str(home / "mem0-home")
        import mem0.memory.notices as notices
        from mem0 import Memory
        from mem0.embeddings.base import EmbeddingBase

        notices._fetch_remote_config = lambda: None  # never reach for the network

        class Mem0FreeEmbedder(EmbeddingBase):  # type: ignore[misc]
            def embed(self, text: str, memory_action: Any = None) -> list[float]:
                kind, i = text_index(text)
                return (corpus if kind == "m" else queries)[i].tolist()  # type: ignore[no-any-return]

        unreachable = "http://127.0.0.1:9/v1"  # any accidental API call fails at once
        self.mem = Memory.from_config(
            {
                "vector_store": {
                    "provider": "qdrant",
                    "config": {
                        "collection_name": "bench",
                        "embedding_model_dims": DIM,
                        "path": str(home / "qdrant"),
                    },
                },
                "embedder": {
                    "provider": "openai",
                    "config": {
                        "api_key": "unused",
                        "embedding_dims": DIM,
                        "openai_base_url": unreachable,
                    },
                },
                "llm": {
                    "provider": "openai",
                    "config": {"api_key": "unused", "openai_base_url": unreachable},
                },
                "history_db_path": str(home / "history.db"),
            }
        )
        self.mem.embedding_model = Mem0FreeEmbedder()

    def add(self, texts: list[str]) -> None:
        """``mem.add`` with lists of 100 messages."""
        for s in range(0, len(texts), 100):
            self.mem.add(
                [{"role": "user", "content": t} for t in texts[s : s + 100]],
                user_id="bench",
                infer=False,
            )

    def search(self, query: str) -> list[int]:
        res = self.mem.search(query, top_k=K, filters={"user_id": "bench"}, threshold=0.0)
        return [text_index(r["memory"])[1] for r in res["results"]]
