"""Small helpers shared by the benchmarks: machine description, timing, tables, result files.

Nothing here is imported by the package; benchmarks print tables and write
``bench/results/<name>.md`` and ``<name>.json``, and are never assertions in the test suite.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"

__all__ = [
    "RESULTS_DIR",
    "Table",
    "dir_bytes",
    "fmt",
    "machine",
    "peak_rss_mb",
    "percentiles_ms",
    "ratio",
    "rss_mb",
    "time_each_ms",
    "write_results",
]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine(packages: Iterable[str] = ()) -> dict[str, Any]:
    """What the figures were measured on (load average included: a busy machine shows)."""
    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gb": _mem_total_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "packages": {name: _version(name) for name in packages},
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def rss_mb() -> float:
    """Current resident set size of this process."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process.

    ``VmHWM`` where Linux has it: ``ru_maxrss`` of a freshly exec'd child can report the
    parent's size at fork time.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def dir_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes of all regular files under ``path``."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def time_each_ms(
    call: Callable[[Any], object],
    items: Sequence[Any],
    before: Callable[[], object] | None = None,
) -> list[float]:
    """Milliseconds of ``call(item)`` for each item; ``before()`` runs untimed ahead of each."""
    out = []
    clock = time.perf_counter
    for item in items:
        if before is not None:
            before()
        start = clock()
        call(item)
        out.append((clock() - start) * 1000)
    return out


def percentiles_ms(times: Sequence[float]) -> tuple[float, float]:
    """(p50, p99) of a list of milliseconds."""
    arr = np.asarray(times, dtype=np.float64)
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def fmt(value: float | None, digits: int = 2) -> str:
    """Numbers for tables: thousands separators for big ones, a dash for missing."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def ratio(a: float | None, b: float | None, digits: int = 2) -> str:
    """``a / b`` as ``1.23x`` (a dash when either is missing)."""
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.{digits}f}x"


@dataclass
class Table:
    """A Markdown table with a title and optional notes under it."""

    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def markdown(self) -> str:
        widths = [len(h) for h in self.headers]
        for row in self.rows:
            for i, cell in enumerate(row):
                widths[i] = max(widths[i], len(cell))
        lines = [f"### {self.title}", ""]
        lines.append(
            "| " + " | ".join(h.ljust(w) for h, w in zip(self.headers, widths, strict=True)) + " |"
        )
        lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for row in self.rows:
            lines.append(
                "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
            )
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "headers": self.headers,
            "rows": self.rows,
            "notes": self.notes,
        }


def write_results(
    name: str,
    *,
    title: str,
    intro: Sequence[str],
    tables: Sequence[Table],
    meta: dict[str, Any],
    data: dict[str, Any],
    extra_markdown: Sequence[str] = (),
    out_dir: Path = RESULTS_DIR,
) -> tuple[Path, Path]:
    """Write ``<name>.md`` (intro, machine, tables) and ``<name>.json`` (all raw figures)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md_lines = [f"# {title}", "", *intro, ""]
    md_lines.append("Machine: " + ", ".join(f"{k} {v}" for k, v in meta.items() if k != "packages"))
    pkgs = ", ".join(f"{k} {v}" for k, v in meta.get("packages", {}).items() if v)
    if pkgs:
        md_lines.append("")
        md_lines.append(f"Packages: {pkgs}")
    md_lines.append("")
    md_lines += [t.markdown() for t in tables]
    md_lines += list(extra_markdown)
    md_path = out_dir / f"{name}.md"
    json_path = out_dir / f"{name}.json"
    md_path.write_text("\n".join(md_lines), encoding="utf-8")
    payload = {"machine": meta, "tables": [t.as_dict() for t in tables], "data": data}
    json_path.write_text(json.dumps(payload, indent=1, default=_json_default), encoding="utf-8")
    return md_path, json_path


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
