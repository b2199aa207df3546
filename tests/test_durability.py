"""Faults: a process killed mid-batch, concurrent threads and processes, a full disk."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import python_env, run_python
from embedders import HashingEmbedder

from sem_mem import SemanticMemory, StorageError

# The child reports progress on stdout: first while embedding, then after each commit.
# The parent kills it with SIGKILL once several chunks are on disk.
WRITER = """
import sys
from embedders import HashingEmbedder
from sem_mem import SemanticMemory
store, total, chunk = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
memory = SemanticMemory(store, embedder=HashingEmbedder())
texts = [f"memory number {i} about topic {i % 97}" for i in range(total)]
memory.remember_batch(texts, metadata=[{"i": i} for i in range(total)], chunk_size=chunk,
                      progress=lambda done, _total: print(done, flush=True))
print("finished", flush=True)
"""


@pytest.mark.slow
def test_sigkill_mid_batch_loses_nothing_committed(tmp_path: Path) -> None:
    store = tmp_path / "crash"
    total, chunk = 40_000, 500
    with subprocess.Popen(  # closes its pipes on the way out
        [sys.executable, "-c", WRITER, str(store), str(total), str(chunk)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=python_env(),
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            assert line.strip() != "finished", "the writer finished before it could be killed"
            if (store / "memory.sqlite3").exists() and _count(store) >= 5 * chunk:
                break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    on_disk = _count(store)
    assert 5 * chunk <= on_disk < total, "the kill did not land mid-batch"
    assert on_disk % chunk == 0, "a chunk was half committed"

    with SemanticMemory(str(store), embedder=HashingEmbedder()) as memory:
        assert len(memory) == on_disk
        assert memory.stats()["index"]["elements"] == on_disk  # index consistent with store
        for i in (0, chunk - 1, on_disk - 1):
            text = f"memory number {i} about topic {i % 97}"
            exact = {
                h.text for h in memory.recall(text, limit=10, mode="vector") if h.similarity > 0.999
            }
            assert text in exact
            # the full-text index is derived data too: caught up from SQLite after the kill
            lexical = memory.recall(f"number {i}", limit=3, mode="lexical")
            assert text in [h.text for h in lexical]
        listed = memory.list(limit=10_000, newest_first=False)
        assert [m.metadata["i"] for m in listed] == list(range(on_disk))
    conn = sqlite3.connect(store / "memory.sqlite3")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def _count(store: Path) -> int:
    conn = sqlite3.connect(f"file:{store / 'memory.sqlite3'}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT COUNT(*) FROM memories").fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0
    finally:
        conn.close()


@pytest.mark.slow  # 240 durable writes racing in 4 threads
def test_concurrent_threads_lose_no_writes(memory: SemanticMemory) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(t: int) -> None:
        try:
            barrier.wait()
            for i in range(60):
                memory.remember(f"thread {t} fact {i}")
                if i % 5 == 0:
                    memory.recall(f"thread {t} fact", limit=3)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(memory) == 240
    assert memory.recall("thread 3 fact 59", limit=1, mode="vector")[0].text == "thread 3 fact 59"


@pytest.mark.slow
def test_two_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    store = tmp_path / "two"
    SemanticMemory(str(store), embedder=HashingEmbedder()).close()
    code = (
        "import sys; from embedders import HashingEmbedder; from sem_mem import SemanticMemory\n"
        "m = SemanticMemory(sys.argv[1], embedder=HashingEmbedder())\n"
        "for i in range(150): m.remember(f'process {sys.argv[2]} fact {i}')\n"
        "m.close()\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(store), tag],
            env=python_env(),
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("A", "B")
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    with SemanticMemory(str(store), embedder=HashingEmbedder()) as memory:
        assert len(memory) == 300
        for tag in ("A", "B"):
            for i in (0, 149):
                text = f"process {tag} fact {i}"
                exact = {
                    h.text
                    for h in memory.recall(text, limit=10, mode="vector")
                    if h.similarity > 0.999
                }
                assert text in exact


def test_an_open_reader_sees_another_process_commits(memory: SemanticMemory) -> None:
    memory.remember("first fact, written here")
    assert memory.recall("penguins", limit=5, mode="lexical") == []
    store = memory.settings.storage_dir
    run_python(
        "from embedders import HashingEmbedder; from sem_mem import SemanticMemory\n"
        f"m = SemanticMemory({store!r}, embedder=HashingEmbedder())\n"
        "m.remember('penguins live in Antarctica')\n"
        "old = m.list()[-1].id\n"
        "m.forget(old)\n"
        "m.close()\n"
    )
    hits = memory.recall("penguins", limit=5, mode="vector")
    assert [h.text for h in hits] == ["penguins live in Antarctica"]
    assert len(memory) == 1


def _mount_tiny_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return result.returncode == 0


def test_full_disk_fails_cleanly_and_keeps_what_was_committed(tmp_path: Path) -> None:
    mount = tmp_path / "tiny"
    if not _mount_tiny_tmpfs(mount, "1200k"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        store = mount / "store"
        kept: list[str] = []
        with SemanticMemory(str(store), embedder=HashingEmbedder(), durability="full") as memory:
            with pytest.raises(StorageError, match=r"full|disk|space"):
                for i in range(100_000):
                    text = f"fact {i} " + "padding " * 39 + "end"
                    memory.remember(text)
                    kept.append(text)
            assert len(memory) == len(kept)
            memory.close()  # the index save may fail for lack of space: logged, not raised
        # copy to a roomy place and check everything committed is there and consistent
        roomy = tmp_path / "roomy"
        subprocess.run(["cp", "-r", str(store), str(roomy)], check=True)
        with SemanticMemory(str(roomy), embedder=HashingEmbedder()) as memory:
            assert len(memory) == len(kept) > 10
            assert memory.recall(kept[-1], limit=1, mode="lexical")[0].text == kept[-1]
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("damage", ["garbage in every file", "meta.json deleted", "folder gone"])
def test_a_damaged_full_text_index_is_rebuilt_from_sqlite(tmp_path: Path, damage: str) -> None:
    store = tmp_path / "store"
    texts = [f"note {i} about the violin lesson number {i}" for i in range(300)]
    with SemanticMemory(str(store), embedder=HashingEmbedder()) as memory:
        memory.remember_batch(texts)
        memory.remember("the cello is in the attic")
    folder = next((store / "text").iterdir())
    assert (folder / "meta.json").exists()  # committed on close
    if damage == "garbage in every file":
        for path in folder.iterdir():
            if path.is_file() and path.stat().st_size > 64:
                with path.open("r+b") as fh:
                    fh.seek(path.stat().st_size // 2)
                    fh.write(b"\xff" * 32)
    elif damage == "meta.json deleted":
        (folder / "meta.json").unlink()
    else:
        import shutil

        shutil.rmtree(folder)
    with SemanticMemory(str(store), embedder=HashingEmbedder()) as memory:
        assert memory.recall("cello attic", limit=1, mode="lexical")[0].text.startswith("the cello")
        hits = memory.recall("violin lesson number 123", limit=3, mode="lexical")
        assert hits[0].text == texts[123]
        assert len(memory.recall("violin", limit=1000, mode="lexical")) == 300
