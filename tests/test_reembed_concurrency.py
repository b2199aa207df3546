"""``reembed`` while another process has the store open (issue 12, item 3).

- the other process notices the model change and refuses with EmbeddingMismatchError,
  instead of committing a vector of the old dimension under the new model's name;
- opening an up-to-date store does not wait for the writer lock (a long reembed);
- a writer-lock timeout is a StorageError naming the holder's pid and operation.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import python_env, run_python
from embedders import HashingEmbedder

from sem_mem import EmbeddingMismatchError, SemanticMemory, StorageError
from sem_mem.backends.sqlite import SQLiteBackend

REEMBED = """
import sys
from embedders import HashingEmbedder
from sem_mem import SemanticMemory
with SemanticMemory(sys.argv[1], embedder=HashingEmbedder()) as memory:
    memory.reembed(HashingEmbedder(32))
"""

# Reembeds with an embedder that blocks (on stdin, no sleeping) until told to go on,
# so the test can act while this process holds the writer lock.
BLOCKED_REEMBED = """
import sys
from embedders import HashingEmbedder
from sem_mem import SemanticMemory

class Waiting(HashingEmbedder):
    def embed_batch(self, texts):
        print("holding", flush=True)
        sys.stdin.readline()
        return super().embed_batch(texts)

with SemanticMemory(sys.argv[1], embedder=HashingEmbedder()) as memory:
    memory.reembed(Waiting(32))
print("done", flush=True)
"""


def test_a_reembed_elsewhere_is_noticed_not_written_through(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    with SemanticMemory(store, embedder=HashingEmbedder()) as memory:
        memory.remember_batch([f"fact {i} about owls" for i in range(20)])
        memory.recall("owls", limit=3)
        run_python(f"import sys; sys.argv = ['x', {store!r}]\n" + REEMBED)
        with pytest.raises(EmbeddingMismatchError, match="re-embedded by another process"):
            memory.remember("written after the reembed, with the old model")
        with pytest.raises(EmbeddingMismatchError):
            memory.recall("owls", limit=3, mode="vector")
        mid = memory.list(limit=1)[0].id
        with pytest.raises(EmbeddingMismatchError):
            memory.update(mid, text="an update with the old model")
    # nothing of the old dimension was stored: every process can still recall
    with SemanticMemory(store, embedder=HashingEmbedder(32)) as memory:
        assert len(memory) == 20
        for mode in ("vector", "hybrid"):
            assert memory.recall("fact 3 about owls", limit=1, mode=mode)[0].text == (
                "fact 3 about owls"
            )
        stored = memory.backend.get_many("default", [m.id for m in memory.list(limit=100)])
        assert {s.embedding.shape for s in stored.values()} == {(32,)}
        assert all(np.isfinite(s.embedding).all() for s in stored.values())


def test_open_and_lock_timeout_while_another_process_reembeds(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with SemanticMemory(str(store), embedder=HashingEmbedder()) as memory:
        memory.remember("a fact about herons")
    child = subprocess.Popen(
        [sys.executable, "-c", f"import sys; sys.argv = ['x', {str(store)!r}]\n" + BLOCKED_REEMBED],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "holding"  # it holds the writer lock now
        # opening needs no lock: no migration is pending
        backend = SQLiteBackend(store, lock_timeout=0.2)
        memory = SemanticMemory(backend=backend, embedder=HashingEmbedder())
        try:
            # (reads that need no derived index load: the first full-text search of a
            # namespace opens its index under the writer lock)
            assert [m.text for m in memory.list()] == ["a fact about herons"]
            with pytest.raises(StorageError) as info:
                memory.remember("a write while the reembed runs")
            message = str(info.value)
            assert f"process {child.pid}" in message and "reembed" in message
            assert "lock_timeout" in message
        finally:
            memory.close()
            backend.close()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "done"
    finally:
        child.stdin.close()  # type: ignore[union-attr]
        child.wait(timeout=120)
        child.stdout.close()  # type: ignore[union-attr]
    assert child.returncode == 0
    assert os.path.exists(store / "write.lock.holder")


@pytest.mark.postgres
def test_a_reembed_by_another_postgres_client_is_noticed_not_written_through() -> None:
    from pg_server import cluster_or_skip

    from sem_mem.backends.postgres import PostgresBackend

    with cluster_or_skip().database() as url, contextlib.ExitStack() as backends:

        def backend() -> PostgresBackend:  # another client with its own connections
            return backends.enter_context(contextlib.closing(PostgresBackend(url)))

        old = HashingEmbedder()
        new = HashingEmbedder(name="other")  # the same dimension: only the model id differs
        with SemanticMemory(backend=backend(), embedder=old) as memory:
            memory.remember_batch([f"fact {i} about owls" for i in range(20)])
            mid = memory.list(limit=1)[0].id
            with SemanticMemory(backend=backend(), embedder=old) as other:
                assert other.reembed(new) == 20
            with pytest.raises(EmbeddingMismatchError, match="re-embedded by another process"):
                memory.remember("written after the reembed, with the old model")
            with pytest.raises(EmbeddingMismatchError):
                memory.update(mid, text="an update with the old model")
            with pytest.raises(EmbeddingMismatchError):
                memory.recall("owls", limit=3, mode="vector")
            memory.forget(mid)  # no vector in a forget: it still goes through
        with SemanticMemory(backend=backend(), embedder=new) as memory:
            assert len(memory) == 19
            models = {s.memory.embedding_model for s in memory.backend.iter_memories("default")}
            assert models == {new.model_id}
            assert memory.recall("fact 3 about owls", limit=1)[0].text == "fact 3 about owls"
