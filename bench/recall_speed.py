"""One engine's side of ``bench/fulltext.py``: builds stores and times recall, over a pipe.

``bench/fulltext.py`` starts this file as a subprocess, once per engine, with
``PYTHONPATH`` set to the source tree whose ``sem_mem`` is measured (this tree, or a
worktree of an older commit), so two versions of the library run side by side in one
benchmark and their rounds can be interleaved. It reads one JSON request per line on
stdin and answers one JSON line on stdout; timings are taken here, so the pipe is not in
them. ``engine == "chroma"`` serves chromadb instead of sem_mem, for the vector case.

It imports nothing from ``bench`` on purpose: it runs as a script beside an older
``sem_mem`` that may not match this tree's helpers.

    python bench/recall_speed.py   # normally started by bench/fulltext.py
"""

from __future__ import annotations

import cProfile
import hashlib
import io
import json
import pstats
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

DIM = 384


def _random_unit(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vec = np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)
    return vec / np.linalg.norm(vec)


def lookup_embedder(table: dict[str, np.ndarray], misses: list[int]) -> Any:
    """An Embedder that looks vectors up (embedding costs nothing, vectors stay realistic).

    Texts it was not given (the common-vocabulary corpus, the writes measured at the end)
    get a fixed random vector; ``misses[0]`` counts them.
    """
    from sem_mem.embedders.base import Embedder

    class Lookup(Embedder):
        model_id = "bench:lookup-minilm-384"
        dimensions = DIM
        batch_size = 100_000

        def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
            out = np.empty((len(texts), DIM), dtype=np.float32)
            for i, text in enumerate(texts):
                vec = table.get(text)
                if vec is None:
                    misses[0] += 1
                    vec = _random_unit(text)
                out[i] = vec
            return out

    return Lookup()


class Worker:
    def __init__(self) -> None:
        self.table: dict[str, np.ndarray] = {}
        self.stores: dict[str, Any] = {}
        self.chroma: dict[str, Any] = {}
        self.misses = [0]

    # ------------------------------------------------------------------ sem_mem

    def memory(self, directory: str, namespace: str) -> Any:
        from sem_mem import SemanticMemory

        return SemanticMemory(
            directory, namespace=namespace, embedder=lookup_embedder(self.table, self.misses)
        )

    def load(self, texts: str, vectors: str) -> dict[str, Any]:
        keys = json.loads(Path(texts).read_text())
        vecs = np.load(vectors)
        self.table.update(zip(keys, vecs, strict=True))
        return {"size": len(self.table)}

    def build(self, store: str, directory: str, namespace: str, plan: str) -> dict[str, Any]:
        """Store the threads (``remember_conversation``) or texts (``remember_batch``) of a plan.

        A plan is a JSON list of {"thread": id, "turns": [...]} or {"texts": [...]}, each
        optionally with its own "namespace" (consecutive items share an open store).
        """
        start = time.perf_counter()
        misses = self.misses[0]
        current, memory = None, None
        for item in json.loads(Path(plan).read_text()):
            ns = item.get("namespace", namespace)
            if ns != current:
                if memory is not None:
                    memory.close()
                current, memory = ns, self.memory(directory, ns)
            if "turns" in item:
                memory.remember_conversation(item["turns"], thread_id=item["thread"])
            else:
                memory.remember_batch(item["texts"], dedupe=False)
        if memory is not None:
            memory.close()
        if store:
            self.stores[store] = self.memory(directory, namespace)
        return {"seconds": time.perf_counter() - start, "misses": self.misses[0] - misses}

    def open(self, store: str, directory: str, namespace: str) -> dict[str, Any]:
        self.stores[store] = self.memory(directory, namespace)
        return {}

    def warm(self, store: str, queries: list[str], modes: list[str]) -> dict[str, Any]:
        memory = self.stores[store]
        for mode in modes:
            for q in queries:
                memory.recall(q, 10, mode=mode)
        return {}

    def round(self, store: str, mode: str, queries: list[str]) -> dict[str, Any]:
        """Milliseconds of ``recall(q, 10, mode=mode)`` per query, the result cache emptied.

        The query vectors are cached (``warm`` asked every query first); the result cache
        is cleared untimed before each call so every recall searches.
        """
        memory = self.stores[store]
        clock = time.perf_counter
        times = []
        for q in queries:
            memory._results.clear()  # benchmark only: search every time
            t0 = clock()
            memory.recall(q, 10, mode=mode)
            times.append((clock() - t0) * 1000)
        return {"ms": times}

    def profile(self, store: str, mode: str, queries: list[str], top: int) -> dict[str, Any]:
        """cProfile of the same calls as ``round``: the top functions by own and total time."""
        memory = self.stores[store]
        prof = cProfile.Profile()
        for q in queries:
            memory._results.clear()
            prof.enable()
            memory.recall(q, 10, mode=mode)
            prof.disable()
        out = {}
        for key in ("tottime", "cumulative"):
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(top)
            out[key] = buf.getvalue()
        return out

    def phases(self, store: str, mode: str, queries: list[str]) -> dict[str, Any]:
        """Wall-clock ms per recall spent in each backend call (timers wrapped around the
        store's backend methods for this call only), and the whole recall."""
        memory = self.stores[store]
        backend = memory.backend
        names = ("refresh", "vector_search", "lexical_search", "thread_places", "get_many")
        spent: dict[str, float] = dict.fromkeys(names, 0.0)
        calls: dict[str, int] = dict.fromkeys(names, 0)

        def timed(name: str, method: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return method(*args, **kwargs)
                finally:
                    spent[name] += time.perf_counter() - t0
                    calls[name] += 1

            return wrapper

        for name in names:
            if hasattr(backend, name):
                setattr(backend, name, timed(name, getattr(backend, name)))
        total = []
        try:
            for q in queries:
                memory._results.clear()
                t0 = time.perf_counter()
                memory.recall(q, 10, mode=mode)
                total.append((time.perf_counter() - t0) * 1000)
        finally:
            for name in names:
                backend.__dict__.pop(name, None)
        n = len(queries)
        return {
            "total_ms": float(np.mean(total)),
            "total_p50_ms": float(np.median(total)),
            "ms": {k: 1000 * v / n for k, v in spent.items()},
            "calls": {k: v / n for k, v in calls.items()},
        }

    def remember(self, store: str, texts: list[str]) -> dict[str, Any]:
        memory = self.stores[store]
        times = []
        for text in texts:
            t0 = time.perf_counter()
            memory.remember(text, dedupe=False)
            times.append((time.perf_counter() - t0) * 1000)
        return {"ms": times}

    def remember_batch(self, store: str, texts: list[str]) -> dict[str, Any]:
        memory = self.stores[store]
        t0 = time.perf_counter()
        memory.remember_batch(texts, dedupe=False)
        return {"seconds": time.perf_counter() - t0}

    # ------------------------------------------------------------------ chromadb

    def chroma_build(self, store: str, directory: str, texts: str, vectors: str) -> dict[str, Any]:
        import chromadb

        docs = json.loads(Path(texts).read_text())
        vecs = np.load(vectors)
        start = time.perf_counter()
        client = chromadb.PersistentClient(path=directory)
        coll = client.create_collection(store, metadata={"hnsw:space": "cosine"})
        step = min(5000, client.get_max_batch_size())
        for s in range(0, len(docs), step):
            coll.add(
                ids=[str(i) for i in range(s, min(s + step, len(docs)))],
                embeddings=vecs[s : s + step],
                documents=docs[s : s + step],
            )
        self.chroma[store] = coll
        return {"seconds": time.perf_counter() - start}

    def chroma_round(self, store: str, queries: list[str]) -> dict[str, Any]:
        coll = self.chroma[store]
        vecs = [self.table.get(q, _random_unit(q)) for q in queries]
        clock = time.perf_counter
        times = []
        for vec in vecs:
            t0 = clock()
            coll.query(query_embeddings=[vec], n_results=10)
            times.append((clock() - t0) * 1000)
        return {"ms": times}

    def close(self) -> dict[str, Any]:
        for memory in self.stores.values():
            memory.close()
        self.stores.clear()
        return {}


def serve() -> None:
    worker = Worker()
    for line in sys.stdin:
        request = json.loads(line)
        cmd = request.pop("cmd")
        try:
            answer = getattr(worker, cmd)(**request)
        except Exception as exc:  # reported to the driver, which stops
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
        if cmd == "close":
            return


if __name__ == "__main__":
    serve()
