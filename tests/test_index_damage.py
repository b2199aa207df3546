"""A damaged, edited or truncated HNSW index file is detected, never trusted, and rebuilt.

Each reopen runs in a fresh interpreter: hnswlib used to crash the process outright
(a segfault in knn_query) on some damaged files, which must fail the test, not pytest.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest
from conftest import run_python
from embedders import HashingEmbedder

from sem_mem import SemanticMemory

# more than EXACT_SEARCH_MAX, so recall goes through the hnswlib graph
COUNT = 2600


def _text(i: int) -> str:
    return f"memory {i} word{i} topic{i % 53} colour{i % 11}"


def make_store(path: Path, count: int = COUNT) -> Path:
    with SemanticMemory(str(path), embedder=HashingEmbedder()) as memory:
        memory.remember_batch([_text(i) for i in range(count)])
    return path / "index" / "ns-default.hnsw"


# What a fresh process checks: every probe is found as its own best vector match.
CHECK = """
import sys
from embedders import HashingEmbedder
from sem_mem import SemanticMemory
store, probes = sys.argv[1], [int(x) for x in sys.argv[2].split(",")]
with SemanticMemory(store, embedder=HashingEmbedder()) as memory:
    for i in probes:
        text = f"memory {i} word{i} topic{i % 53} colour{i % 11}"
        hits = memory.recall(text, limit=3, mode="vector")
        assert hits and hits[0].text == text, (i, [h.text for h in hits])
    assert len(memory) == int(sys.argv[3])
print("ok")
"""


def check_in_fresh_process(store: Path, count: int = COUNT) -> subprocess.CompletedProcess[str]:
    probes = ",".join(str(i) for i in (0, 1, count // 2, count - 1))
    code = f"import sys; sys.argv = ['x', {str(store)!r}, {probes!r}, '{count}']\n" + CHECK
    return run_python(code, check=False, timeout=300)


def _overwrite(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(data)


@pytest.mark.parametrize("size", [4096, 65536])
@pytest.mark.slow  # fault injection: a big index damaged and rebuilt
def test_garbage_in_the_middle_is_detected_and_rebuilt(tmp_path: Path, size: int) -> None:
    index = make_store(tmp_path / "store")
    before = index.read_bytes()
    _overwrite(index, len(before) // 2 - size // 2, random.Random(size).randbytes(size))
    proc = check_in_fresh_process(tmp_path / "store")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rebuilding" in proc.stderr  # the damage was noticed, not searched through
    # the rebuilt file was saved in place of the damaged one: the next open trusts it
    proc = check_in_fresh_process(tmp_path / "store")
    assert proc.returncode == 0 and "rebuilding" not in proc.stderr, proc.stderr[-3000:]


def test_sidecar_edited_to_another_dimension_is_not_loaded(tmp_path: Path) -> None:
    index = make_store(tmp_path / "store")
    side = index.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta["dim"] = 32
    side.write_text(json.dumps(meta))
    proc = check_in_fresh_process(tmp_path / "store")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rebuilding" in proc.stderr
    assert json.loads(side.read_text())["dim"] == 64  # rewritten by the rebuild


def damage_cases(size: int) -> list[tuple[str, int, bytes | None]]:
    """(name, offset, bytes written there; None = truncate at offset) for a file of ``size``."""
    rng = random.Random(7)
    cases: list[tuple[str, int, bytes | None]] = [
        ("zeroed header", 0, bytes(96)),
        ("element count doubled", 16, (COUNT * 2).to_bytes(8, "little")),
        ("entry point out of range", 60, (10**9).to_bytes(4, "little", signed=True)),
        ("max level huge", 56, (10**6).to_bytes(4, "little", signed=True)),
        ("one flipped byte in the vectors", size // 3, b"\xff"),
        ("one flipped byte in the link lists", size - 40, b"\x7f"),
        ("garbage 4 KiB middle", size // 2, rng.randbytes(4096)),
        ("garbage 64 KiB middle", size // 2 - 32768, rng.randbytes(65536)),
        ("garbage tail", size - 512, rng.randbytes(512)),
        ("truncated to the header", 96, None),
        ("truncated mid data", size // 2, None),
        ("truncated by 1 byte", size - 1, None),
        ("empty file", 0, None),
    ]
    for n in range(7):  # random spans anywhere
        offset = rng.randrange(0, size)
        cases.append((f"random span {n}", offset, rng.randbytes(rng.choice([1, 8, 300, 5000]))))
    return cases


DAMAGE_LOOP = """
import sys, json
from embedders import HashingEmbedder
from sem_mem import SemanticMemory
store, count = sys.argv[1], int(sys.argv[2])
cases = json.loads(open(sys.argv[3]).read())
index = store + "/index/ns-default.hnsw"
good = open(index, "rb").read()
good_side = open(index[:-5] + ".json", "rb").read()
for name, offset, data in cases:
    with open(index, "wb") as fh:
        fh.write(good)
    open(index[:-5] + ".json", "wb").write(good_side)
    with open(index, "r+b") as fh:
        if data is None:
            fh.truncate(offset)
        else:
            fh.seek(offset)
            fh.write(bytes.fromhex(data))
    with SemanticMemory(store, embedder=HashingEmbedder()) as memory:
        for i in (0, count // 2, count - 1):
            text = f"memory {i} word{i} topic{i % 53} colour{i % 11}"
            hits = memory.recall(text, limit=3, mode="vector")
            assert hits and hits[0].text == text, (name, i)
    print("repaired", name, flush=True)
"""


def run_damage_battery(store: Path, count: int = COUNT) -> tuple[int, list[str]]:
    """Apply every damage case in a fresh process; returns (cases, names repaired)."""
    index = store / "index" / "ns-default.hnsw"
    cases = damage_cases(index.stat().st_size)
    payload = store.parent / "damage-cases.json"
    encoded = [(n, o, d.hex() if d is not None else None) for n, o, d in cases]
    payload.write_text(json.dumps(encoded))
    args = [str(store), str(count), str(payload)]
    code = f"import sys; sys.argv = ['x', *{args!r}]\n" + DAMAGE_LOOP
    proc = run_python(code, check=False, timeout=600)
    repaired = [line[len("repaired ") :] for line in proc.stdout.splitlines()]
    if proc.returncode != 0:
        repaired.append(f"!! process ended with {proc.returncode}: {proc.stderr[-2000:]}")
    return len(cases), repaired


@pytest.mark.slow  # fault injection: every damage in a subprocess
def test_no_damaged_index_file_crashes_or_misleads_recall(tmp_path: Path) -> None:
    make_store(tmp_path / "store")
    total, repaired = run_damage_battery(tmp_path / "store")
    assert len(repaired) == total, repaired[-1:]


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir()
    if os.geteuid() != 0:
        return False
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    return proc.returncode == 0


def test_index_save_on_a_full_disk_keeps_the_good_file(tmp_path: Path) -> None:
    mount = tmp_path / "disk"
    if not _mount_tmpfs(mount, "8m"):
        pytest.skip("needs root to mount a small tmpfs")
    try:
        store = mount / "store"
        index = make_store(store)
        good = index.read_bytes()
        with SemanticMemory(str(store), embedder=HashingEmbedder()) as memory:
            memory.remember_batch([_text(i) for i in range(COUNT, COUNT + 400)])
            # fill the disk, then leave less room than the new index file needs
            # (unbuffered: a write cut short by ENOSPC leaves nothing for close to flush)
            ballast = mount / "ballast"
            with ballast.open("wb", buffering=0) as fh:
                try:
                    while True:
                        fh.write(b"\0" * 65536)
                        fh.flush()
                except OSError:
                    pass
            os.truncate(ballast, max(0, ballast.stat().st_size - len(good) // 2))
            memory.flush()  # the save fails for lack of space: logged, not raised
            assert index.read_bytes() == good  # a short file never replaced the good one
            assert not list(index.parent.glob("*.tmp"))
            ballast.unlink()
        proc = check_in_fresh_process(store, COUNT + 400)
        assert proc.returncode == 0, proc.stderr[-3000:]
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_an_empty_namespace_index_is_saved_and_trusted(tmp_path: Path) -> None:
    store = tmp_path / "store"
    with SemanticMemory(str(store), namespace="empty", embedder=HashingEmbedder()) as memory:
        assert memory.recall("anything") == []
    index = store / "index" / "ns-empty.hnsw"
    assert index.exists()  # an empty graph's header (max level -1) is valid
    proc = run_python(
        "from embedders import HashingEmbedder; from sem_mem import SemanticMemory\n"
        f"m = SemanticMemory({str(store)!r}, namespace='empty', embedder=HashingEmbedder())\n"
        "assert m.recall('anything') == []\nm.close()\n"
    )
    assert "rebuilding" not in proc.stderr and "could not save" not in proc.stderr
