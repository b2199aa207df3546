"""Checks of hnswlib's index files before they are trusted, and durable file writes.

hnswlib neither checks its writes (on a full disk it leaves a short file and reports
success) nor validates what it loads (garbage in the middle of a file raised
``OverflowError`` on every search, or crashed the process in ``knn_query``). No
library validates its format, so this module does, by hand, from its documented
layout (``hnswalg.h``, ``saveIndex``)::

    header (96 bytes): offsetLevel0, max_elements, cur_element_count,
        size_data_per_element, label_offset, offsetData (u64 each), maxlevel,
        enterpoint_node (i32 each), maxM, maxM0, M (u64 each), mult (f64),
        ef_construction (u64)
    cur_element_count * size_data_per_element bytes of level-0 data
    per element: u32 size, then that many bytes of upper-level links

After a save the written file is parsed to the last byte (its exact size follows
from the header and the link-list sizes) and fsynced before it replaces the old one;
its SHA-256 goes into the sidecar. A load first compares the whole file with that
checksum, so damage anywhere, not just at the ends, is detected before hnswlib reads it.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

from ..errors import StorageError

__all__ = ["HEADER", "check_header", "fsync_dir", "sha256_file", "verify_written", "write_durably"]

HEADER = struct.Struct("<QQQQQQiiQQQdQ")  # 96 bytes
_CHUNK = 1 << 20


def check_header(head: bytes, dim: int, m: int) -> tuple[int, int]:
    """``(cur_element_count, size_data_per_element)`` if the header fits ``dim`` and ``m``.

    Raises StorageError naming the first inconsistent field.
    """
    if len(head) < HEADER.size:
        raise StorageError(f"index file is {len(head)} bytes, shorter than its header")
    (
        offset0,
        max_elements,
        count,
        per_element,
        label_offset,
        data_offset,
        max_level,
        _entry,
        max_m,
        max_m0,
        stored_m,
        _mult,
        _ef,
    ) = HEADER.unpack_from(head)
    links0 = max_m0 * 4 + 4
    expected = {
        "offsetLevel0": (offset0, 0),
        "M": (stored_m, m),
        "maxM": (max_m, m),
        "maxM0": (max_m0, 2 * m),
        "offsetData": (data_offset, links0),
        "label_offset": (label_offset, links0 + dim * 4),
        "size_data_per_element": (per_element, links0 + dim * 4 + 8),
    }
    for name, (value, want) in expected.items():
        if value != want:
            raise StorageError(f"index header field {name} is {value}, expected {want}")
    # an empty graph has max level -1
    if count > max_elements or max_level < (0 if count else -1) or max_level > 64:
        raise StorageError(
            f"index header is inconsistent ({count} elements of {max_elements}, "
            f"max level {max_level})"
        )
    return count, per_element


def verify_written(path: Path, dim: int, m: int) -> tuple[int, str]:
    """fsync ``path``, parse it to the end and return ``(size, sha256)``.

    Raises StorageError if the file is shorter or longer than its own header says
    (a write cut short by a full disk), or inconsistent with ``dim`` and ``m``.
    """
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        os.fsync(fh.fileno())
        size = os.fstat(fh.fileno()).st_size
        head = fh.read(HEADER.size)
        digest.update(head)
        count, per_element = check_header(head, dim, m)
        remaining = count * per_element
        while remaining > 0:
            chunk = fh.read(min(_CHUNK, remaining))
            if not chunk:
                raise StorageError(f"index file is truncated ({size} bytes, level-0 data cut)")
            digest.update(chunk)
            remaining -= len(chunk)
        links = fh.read()  # u32 size + links per element: ~4 bytes each, small
        digest.update(links)
    offset, end = 0, len(links)
    for _ in range(count):
        if offset + 4 > end:
            raise StorageError(f"index file is truncated ({size} bytes, link lists cut)")
        offset += 4 + int.from_bytes(links[offset : offset + 4], "little")
    if offset != end:
        raise StorageError(
            f"index file is {size} bytes but its header and link lists say "
            f"{size - end + offset} (truncated or padded)"
        )
    return size, digest.hexdigest()


def sha256_file(path: Path) -> tuple[int, str]:
    """``(size, sha256)`` of the whole file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return size, digest.hexdigest()


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a fsynced temporary file and a rename."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
