"""The ``sem-mem`` command line (Typer): a thin edge over :class:`SemanticMemory`.

Every command takes ``--storage-dir`` and ``--namespace`` (defaults: the configured
``MEMORY_STORAGE_DIR`` / ``SEMMEM_NAMESPACE``) and ``--help``. Errors are printed as one
line on stderr, with an exit code chosen by error class (see :data:`EXIT_CODES`).

Tests (and embedding applications) can pass ``obj={"embedder": ...}`` to Typer's
runner to choose the embedder; ``obj={"new_embedder": ...}`` is used by ``reembed``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from .cli_common import (
    EXIT_CODES,
    JsonFlag,
    Namespace,
    StorageDir,
    _err,
    _errors,
    _fail,
    _full_id,
    _json,
    _memory,
    _out,
    _parse_metadata,
    _progress,
    _short,
    _when,
)
from .cli_conversation import chat, ingest
from .errors import ValidationError

__all__ = ["EXIT_CODES", "app", "main"]

app = typer.Typer(
    name="sem-mem",
    help="Sem-Mem: tiered semantic memory for AI agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# --------------------------------------------------------------------------- memories


@app.command()
def remember(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="The fact to store")],
    metadata: Annotated[
        str | None, typer.Option("--metadata", "-m", help="JSON object stored with it")
    ] = None,
    timestamp: Annotated[
        str | None,
        typer.Option(help="When it happened or was said (ISO 8601; default: now)"),
    ] = None,
    storage_dir: StorageDir = None,
    namespace: Namespace = None,
    as_json: JsonFlag = False,
) -> None:
    """Store one memory and print its id."""
    with _memory(ctx, storage_dir, namespace) as memory:
        memory_id = memory.remember(
            text, _parse_metadata(metadata), timestamp=_when(timestamp, "--timestamp")
        )
    if as_json:
        _json({"id": memory_id})
    else:
        _out().print(memory_id, highlight=False)


@app.command()
def recall(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="What to look for")],
    limit: Annotated[int, typer.Option("--limit", "-k", help="How many results")] = 5,
    threshold: Annotated[
        float | None, typer.Option(help="Drop results below this cosine similarity")
    ] = None,
    mode: Annotated[str, typer.Option(help="hybrid, vector or lexical")] = "hybrid",
    source: Annotated[
        str | None, typer.Option(help="Only this source: manual, auto, thread, pdf, …")
    ] = None,
    metadata: Annotated[
        str | None, typer.Option("--metadata", "-m", help="Only memories matching this JSON")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only what happened at or after this (ISO 8601)")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only what happened before this (ISO 8601)")
    ] = None,
    rerank: Annotated[
        bool | None,
        typer.Option(
            "--rerank/--no-rerank",
            help="Reorder the best 25 with the cross-encoder (default: SEMMEM_RERANKER)",
        ),
    ] = None,
    storage_dir: StorageDir = None,
    namespace: Namespace = None,
    as_json: JsonFlag = False,
) -> None:
    """Print the memories most relevant to QUERY, best first."""
    with _memory(ctx, storage_dir, namespace) as memory:
        results = memory.recall(
            query,
            limit,
            threshold=threshold,
            mode=mode,
            source=source,
            metadata=_parse_metadata(metadata),
            since=_when(since, "--since"),
            until=_when(until, "--until"),
            rerank=rerank,
        )
    if as_json:
        _json([r.to_dict() for r in results])
        return
    if not results:
        _out().print("no memories found")
        return
    table = Table("#", "score", "sim", "tier", "id", "text")
    for rank, r in enumerate(results, start=1):
        table.add_row(
            str(rank), f"{r.score:.3f}", f"{r.similarity:.3f}", r.tier, r.id[:8], _short(r.text)
        )
    _out().print(table)


@app.command()
def forget(
    ctx: typer.Context,
    memory_ids: Annotated[list[str], typer.Argument(help="Ids of the memories to delete")],
    storage_dir: StorageDir = None,
    namespace: Namespace = None,
) -> None:
    """Delete memories for good (an id may be shortened as `recall` prints it)."""
    with _memory(ctx, storage_dir, namespace) as memory:
        for memory_id in memory_ids:
            full = _full_id(memory, memory_id)
            memory.forget(full)
            _out().print(f"forgot {full}", highlight=False)


@app.command()
def get(
    ctx: typer.Context,
    memory_id: Annotated[str, typer.Argument(help="The id (or its start, as recall prints it)")],
    storage_dir: StorageDir = None,
    namespace: Namespace = None,
    as_json: JsonFlag = False,
) -> None:
    """Show one memory."""
    with _memory(ctx, storage_dir, namespace) as memory:
        found = memory.get(_full_id(memory, memory_id))
    if as_json:
        _json(found.to_dict())
        return
    table = Table("field", "value", show_header=False)
    for key, value in found.to_dict().items():
        if value not in (None, {}, ""):
            table.add_row(key, value if isinstance(value, str) else json.dumps(value))
    _out().print(table)


@app.command("list")
def list_(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", "-k")] = 20,
    offset: int = 0,
    source: Annotated[str | None, typer.Option(help="manual, auto, pdf, document, ...")] = None,
    metadata: Annotated[
        str | None, typer.Option("--metadata", "-m", help="JSON object to match")
    ] = None,
    since: Annotated[datetime | None, typer.Option(help="Created at or after")] = None,
    until: Annotated[datetime | None, typer.Option(help="Created before")] = None,
    include_superseded: bool = False,
    storage_dir: StorageDir = None,
    namespace: Namespace = None,
    as_json: JsonFlag = False,
) -> None:
    """List memories, newest first."""
    with _memory(ctx, storage_dir, namespace) as memory:
        page = memory.list(
            limit=limit,
            offset=offset,
            source=source,
            since=since,
            until=until,
            metadata=_parse_metadata(metadata),
            include_superseded=include_superseded,
        )
    if as_json:
        _json([m.to_dict() for m in page])
        return
    if not page:
        filtered = any(v is not None for v in (source, metadata, since, until)) or offset
        where = f"namespace {memory.namespace!r}"
        _out().print(
            f"no memories match in {where}" if filtered else f"{where} has no memories yet",
            highlight=False,
        )
        return
    table = Table("id", "created", "source", "hits", "text")
    for m in page:
        table.add_row(
            m.id, f"{m.created_at:%Y-%m-%d %H:%M}", m.source, str(m.hit_count), _short(m.text, 60)
        )
    _out().print(table)


# --------------------------------------------------------------------------- chat and documents
# (in cli_conversation.py; registered here so --help lists them in this order)

app.command()(chat)
app.command()(ingest)


# --------------------------------------------------------------------------- maintenance


@app.command()
def stats(
    ctx: typer.Context,
    storage_dir: StorageDir = None,
    namespace: Namespace = None,
    as_json: JsonFlag = False,
) -> None:
    """Counts, L1 cache figures, index parameters and the embedder."""
    with _memory(ctx, storage_dir, namespace) as memory:
        figures = memory.stats()
    if as_json:
        _json(figures)
    else:
        _out().print_json(data=figures, default=str)


@app.command("export")
def export_(
    ctx: typer.Context,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout)")
    ] = None,
    embeddings: Annotated[bool, typer.Option(help="Include the vectors")] = True,
    storage_dir: StorageDir = None,
    namespace: Namespace = None,
) -> None:
    """Write the namespace as JSON Lines (lossless; `import` reads it back)."""
    with _memory(ctx, storage_dir, namespace) as memory:
        memory.flush()
        lines = memory.export_jsonl(include_embeddings=embeddings)
        if output is None:
            for line in lines:
                sys.stdout.write(line)
            return
        count = 0
        with _open_output(output) as fp:
            for line in lines:
                fp.write(line)
                count += line.startswith('{"type":"memory"')
        _err().print(f"exported {count} memories to {output}", highlight=False)


@contextmanager
def _open_output(path: Path) -> Iterator[Any]:
    try:
        fp = path.open("w", encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"cannot write {path}: {exc.strerror or exc}") from exc
    with fp:
        yield fp


@app.command("import")
def import_(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(help="JSON Lines file written by `export` ('-': stdin)")],
    storage_dir: StorageDir = None,
    namespace: Namespace = None,
    with_instructions: Annotated[
        bool,
        typer.Option(
            "--with-instructions",
            help="Also replace the namespace's instructions with the file's (off by default)",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Import JSON Lines (ids, timestamps and hit counts are kept)."""
    from .transfer import bounded_lines, max_line_bytes

    with _memory(ctx, storage_dir, namespace) as memory, _progress(disable=as_json) as progress:
        limit = max_line_bytes(memory.settings)
        if file == "-":
            lines = bounded_lines(sys.stdin.buffer.readline, limit)
            report = memory.import_jsonl(lines, with_instructions=with_instructions)
        else:
            try:
                with open(file, "rb") as counting:
                    total = sum(
                        chunk.count(b"\n") for chunk in iter(lambda: counting.read(1 << 20), b"")
                    )
                fp = open(file, "rb")  # noqa: SIM115 - closed below
            except OSError as exc:
                raise ValidationError(f"cannot read {file}: {exc.strerror or exc}") from exc
            task = progress.add_task("importing lines", total=total)

            def counted(lines: Iterator[bytes]) -> Iterator[bytes]:
                for line in lines:
                    yield line
                    progress.advance(task)

            with fp:
                lines = bounded_lines(fp.readline, limit)
                report = memory.import_jsonl(counted(lines), with_instructions=with_instructions)
    if as_json:
        _json(report.to_dict())
    else:
        _out().print(
            f"imported {report.imported}, skipped {report.skipped_existing} already present, "
            f"re-embedded {report.reembedded}"
            + (
                "; the file's instructions were not imported (--with-instructions)"
                if report.instructions_skipped
                else ""
            ),
            highlight=False,
        )


@app.command()
def reembed(
    ctx: typer.Context,
    embedder: Annotated[str, typer.Option(help="local or openai")] = "local",
    model: Annotated[str | None, typer.Option(help="Embedding model name")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    storage_dir: StorageDir = None,
    namespace: Namespace = None,
) -> None:
    """Re-embed every memory of the store with another embedding model (all namespaces)."""
    with _memory(ctx, storage_dir, namespace) as memory:
        new = (ctx.obj or {}).get("new_embedder")
        if new is None:
            from .embedders.factory import create_embedder

            new = create_embedder(
                memory.settings.with_overrides(embedder=embedder, embedding_model=model)
            )
        if not yes and not typer.confirm(
            f"re-embed every memory with {new.model_id}?", default=False
        ):
            raise typer.Exit(1)
        with _progress() as progress:
            task = progress.add_task("re-embedding", total=None)
            count = memory.reembed(
                new, progress=lambda done, total: progress.update(task, completed=done, total=total)
            )
    _out().print(f"re-embedded {count} memories with {new.model_id}", highlight=False)


@app.command()
def migrate(
    ctx: typer.Context,
    from_lsh: Annotated[
        Path | None, typer.Option(help="Directory of old LSH bucket_*.json files")
    ] = None,
    from_original: Annotated[
        Path | None, typer.Option(help="Directory of the original sem-mem (hnsw_metadata.json)")
    ] = None,
    to: Annotated[
        str | None, typer.Option(help="Target store URL (postgresql://…); default: storage dir")
    ] = None,
    embedding_model: Annotated[
        str | None, typer.Option(help="Model the old vectors were made with")
    ] = None,
    reuse_vectors: Annotated[bool, typer.Option(help="Reuse stored vectors when possible")] = True,
    from_url: Annotated[
        str | None, typer.Option(help="Copy from this PostgreSQL URL into --to (a directory)")
    ] = None,
    storage_dir: StorageDir = None,
    namespace: Namespace = None,
) -> None:
    """Import memories from an older format, or copy the store to/from PostgreSQL.

    `sem-mem migrate --to postgresql://...` copies the embedded store (--storage-dir)
    into PostgreSQL; `--to DIR --from-url postgresql://...` copies it back. Memories,
    history, instructions and chat sessions move; a re-run copies only what is missing.
    """
    from . import migrate as migrations

    if to is not None or from_url is not None:
        if from_lsh is not None or from_original is not None:
            raise _fail(
                "--from-lsh/--from-original import into --storage-dir; --to copies a "
                "whole store: use one or the other",
                2,
            )
        _copy_store(storage_dir, to, from_url)
        return
    if (from_lsh is None) == (from_original is None):
        raise _fail("give exactly one of --from-lsh DIR, --from-original DIR or --to URL", 2)
    source = from_lsh or from_original
    run = migrations.migrate_lsh_to_hnsw if from_lsh else migrations.migrate_original_sem_mem
    with _memory(ctx, storage_dir, namespace) as memory:
        created = run(
            source,  # type: ignore[arg-type]
            memory,
            embedding_model=embedding_model,
            reuse_vectors=reuse_vectors,
        )
    _out().print(f"migrated {created} memories from {source}", highlight=False)


def _copy_store(storage_dir: str | None, to: str | None, from_url: str | None) -> None:
    """Copy every namespace between the embedded store and PostgreSQL, then verify."""
    from .backends.copy import copy_store
    from .backends.factory import open_backend
    from .config import resolve_settings

    def is_url(value: str | None) -> bool:
        return bool(value) and value.startswith(("postgres://", "postgresql://"))  # type: ignore[union-attr]

    with _errors():
        settings = resolve_settings(storage_dir=storage_dir)
        if from_url is not None:
            if not is_url(from_url) or to is None or is_url(to):
                raise _fail("--from-url needs a postgresql:// URL and --to a directory", 2)
            src = open_backend(settings.with_overrides(database_url=from_url))
            dst = open_backend(settings.with_overrides(database_url=None, storage_dir=to))
        else:
            if not is_url(to):
                raise _fail("--to must be a postgresql:// URL (or use --from-url to copy back)", 2)
            src = open_backend(settings.with_overrides(database_url=None))
            dst = open_backend(settings.with_overrides(database_url=to))
        try:
            with Progress(console=_err()) as progress:
                task = progress.add_task("copying", total=None)
                report = copy_store(
                    src, dst, progress=lambda d, t: progress.update(task, completed=d, total=t)
                )
        finally:
            src.close()
            dst.close()
    _json(report)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port)")] = 8000,
    allow_unauthenticated: Annotated[
        bool,
        typer.Option(
            help="Allow a non-loopback --host without SEMMEM_API_KEYS (anyone can read and write)"
        ),
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
    storage_dir: StorageDir = None,
    namespace: Namespace = None,
) -> None:
    """Run the HTTP API (docs at /docs). Without API keys only 127.0.0.1 is allowed."""
    import uvicorn

    from .config import resolve_settings
    from .server import ServerConfig, create_app
    from .server.auth import NamespaceRegistry, is_loopback
    from .server.factory import auth_banner

    with _errors():
        settings = resolve_settings(storage_dir=storage_dir, namespace=namespace)
        config = ServerConfig.from_env(allow_unauthenticated=allow_unauthenticated or None)
        has_keys = bool(NamespaceRegistry(settings).api_keys)
        if not has_keys and not is_loopback(host) and not config.allow_unauthenticated:
            raise _fail(
                f"refusing to listen on {host} without API keys: set SEMMEM_API_KEYS "
                "(key:namespace,...) or pass --allow-unauthenticated",
                2,
            )
        _err().print(
            f"sem-mem: {auth_banner(NamespaceRegistry(settings), config)}", highlight=False
        )
        from .server.protocol import uvicorn_options

        uvicorn.run(
            create_app(settings, config=config),
            host=host,
            port=port,
            log_level=log_level,
            **uvicorn_options(config),
        )


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def ui(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8501,
    api_url: Annotated[
        str | None, typer.Option(help="Use this API server instead of an in-process memory")
    ] = None,
    storage_dir: StorageDir = None,
) -> None:
    """Open the Streamlit app (chat, memory browser, Memory Atlas). Extra args go to streamlit."""
    from .ui.launch import launch

    raise typer.Exit(
        launch(list(ctx.args), host=host, port=port, api_url=api_url, storage_dir=storage_dir)
    )


@app.command()
def mcp(
    http: Annotated[
        bool, typer.Option("--http", help="Serve streamable HTTP at http://HOST:PORT/mcp")
    ] = False,
    host: Annotated[str, typer.Option(help="HTTP bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port (0: a free port, named in the log)")] = 8765,
    allow_unauthenticated: Annotated[
        bool, typer.Option(help="Allow a non-loopback --host (MCP over HTTP has no auth)")
    ] = False,
    storage_dir: StorageDir = None,
    namespace: Namespace = None,
) -> None:
    """Run the MCP server for agent clients (stdio by default; --http for streamable HTTP)."""
    from .mcp_server import main as mcp_main

    argv = ["--host", host, "--port", str(port)]
    if storage_dir is not None:
        argv += ["--storage-dir", storage_dir]
    if namespace is not None:
        argv += ["--namespace", namespace]
    if http:
        argv.append("--http")
    if allow_unauthenticated:
        argv.append("--allow-unauthenticated")
    raise typer.Exit(mcp_main(argv))  # nothing may reach stdout first: it is the protocol


def _register_doctor() -> None:
    from .cli_doctor import doctor

    app.command()(doctor)


_register_doctor()


def main() -> None:
    """Entry point of the ``sem-mem`` script."""
    app()


if __name__ == "__main__":
    main()
