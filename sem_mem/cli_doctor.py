"""``sem-mem doctor``: check a store, repair what is derived, recover a damaged file.

Registered on the ``sem-mem`` app by :mod:`sem_mem.cli` (kept apart to keep that
module small).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["doctor"]


def doctor(
    ctx: typer.Context,
    repair: Annotated[
        bool, typer.Option("--repair", help="Rebuild what is derived (index, full text, counts)")
    ] = False,
    recover_to: Annotated[
        Path | None,
        typer.Option(
            "--recover-to",
            help="Copy every readable memory of a damaged store into this new directory",
        ),
    ] = None,
    storage_dir: Annotated[
        str | None, typer.Option("--storage-dir", "-d", help="Store directory")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Check the store: SQLite integrity, full text, counts, index files, temp files
    (PostgreSQL: each namespace's HNSW index)."""
    from .cli_common import _errors, _json, _memory, _out
    from .config import resolve_settings

    if recover_to is not None:
        from .backends.sqlite_recover import recover_store

        with _errors():
            root = Path(resolve_settings(storage_dir=storage_dir).storage_dir)
            report = recover_store(root, recover_to)
        if as_json:
            _json(report)
        else:
            _out().print(
                f"recovered {report['recovered']} memories into {recover_to}; "
                f"{report['unreadable_rows']} could not be read",
                highlight=False,
            )
        return
    with _memory(ctx, storage_dir, None) as memory:
        report = memory.check(repair=repair)
    if as_json:
        _json(report)
    else:
        out = _out()
        for problem in report["problems"]:
            mark = "repaired" if problem["repaired"] else "PROBLEM"
            out.print(
                f"{mark}: [{problem['check']}] {problem['detail']}", highlight=False, markup=False
            )
        out.print("ok" if not report["problems"] else "", highlight=False)
    if not report["ok"]:
        raise typer.Exit(1)
