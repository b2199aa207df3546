"""The ``sem-mem chat`` and ``sem-mem ingest`` commands (registered in :mod:`sem_mem.cli`):
the conversation engine and documents/chat exports, translated for a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from .cli_common import (
    EXIT_CODES,
    JsonFlag,
    Namespace,
    StorageDir,
    _err,
    _errors,
    _json,
    _memory,
    _out,
    _progress,
    _short,
)
from .errors import SemMemError, ValidationError

# --------------------------------------------------------------------------- chat


def chat(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Chat model (default: CHAT_MODEL)")] = None,
    reasoning_effort: Annotated[str | None, typer.Option(help="none … high")] = None,
    web_search: Annotated[bool | None, typer.Option("--web-search/--no-web-search")] = None,
    auto_remember: Annotated[
        bool | None, typer.Option("--auto-remember/--no-auto-remember")
    ] = None,
    session: Annotated[
        str | None,
        typer.Option(help="Keep the conversation in the store under this name and continue it"),
    ] = None,
    chat_api: Annotated[
        str | None,
        typer.Option(help="auto, responses or chat_completions (default: CHAT_API or auto)"),
    ] = None,
    show_memories: Annotated[bool, typer.Option(help="Print the memories used")] = False,
    storage_dir: StorageDir = None,
    namespace: Namespace = None,
) -> None:
    """Interactive chat with memory. Type `remember: <fact>`, `instruct: <rule>` or `exit`.

    With --session NAME the conversation is kept in the store and the next
    `sem-mem chat --session NAME` continues it.
    """
    from .conversation import ChatOptions, ChatSession

    options = ChatOptions(
        model=model,
        reasoning_effort=reasoning_effort,
        web_search=web_search,
        auto_remember=auto_remember,
    )
    obj = dict(ctx.obj or {})
    if chat_api is not None:
        obj["chat_api"] = chat_api
    ctx.obj = obj
    with _memory(ctx, storage_dir, namespace) as memory:
        with _errors():
            if session is None:
                talk = ChatSession(memory, options)
            else:
                talk = ChatSession.load(memory, session, options, create=True, title=session)
        resumed = f", continuing {len(talk.thread)} messages" if talk.thread else ""
        _out().print(
            f"sem-mem chat — `remember: …`, `instruct: …`, `exit` to quit{resumed}",
            highlight=False,
        )
        for line in sys.stdin if not sys.stdin.isatty() else _prompt_lines():
            line = line.strip()
            if not line:
                continue
            if line.lower() in ("exit", "quit", ":q"):
                break
            with _errors_inline():
                reply = talk.send(line)
                if session is not None:
                    talk.persist()
                if reply.command == "remember":
                    _out().print(f"remembered {reply.memory_id}", highlight=False)
                elif reply.command == "instruct":
                    _out().print("instruction added")
                else:
                    _out().print(reply.text, highlight=False, markup=False)
                    if show_memories:
                        for m in reply.memories:
                            _out().print(f"  · {_short(m.text)}", style="dim", markup=False)


def _prompt_lines() -> Iterator[str]:
    while True:
        try:
            yield input("you> ")
        except EOFError:
            return


@contextmanager
def _errors_inline() -> Iterator[None]:
    """In the REPL an error is printed and the session goes on."""
    try:
        yield
    except SemMemError as exc:
        _err().print(f"error: {exc}", markup=False, highlight=False)


# --------------------------------------------------------------------------- documents


def ingest(
    ctx: typer.Context,
    files: Annotated[
        list[Path],
        typer.Argument(help="PDF, text or Markdown files, or chat exports (.jsonl)"),
    ],
    chunk_chars: Annotated[int, typer.Option(help="Maximum characters per chunk")] = 1000,
    overlap_chars: Annotated[int, typer.Option(help="Sentence overlap between chunks")] = 150,
    storage_dir: StorageDir = None,
    namespace: Namespace = None,
    as_json: JsonFlag = False,
) -> None:
    """Store documents as chunks, and chat exports as conversations.

    A document is cut into chunks (the same file twice stores nothing new). A chat
    export is JSON Lines, one message a line: speaker (or role), text (or content),
    optionally timestamp and thread_id; each thread is stored one memory per turn.
    A file that fails is reported at the end and the others are still stored; an
    interrupted run keeps what was committed, and running it again resumes.
    """
    rows: list[dict[str, Any]] = []
    failures: list[tuple[Path, SemMemError]] = []
    with (
        _memory(ctx, storage_dir, namespace) as memory,
        _progress(disable=as_json) as progress,
    ):
        for path in files:
            task = progress.add_task(path.name, total=None)

            def report(done: int, total: int, task: Any = task) -> None:
                progress.update(task, completed=done, total=total)

            try:
                rows += _ingest_one(memory, path, report, chunk_chars, overlap_chars)
            except KeyboardInterrupt:
                progress.stop()
                _err().print(
                    f"interrupted during {path.name}: what was committed is kept; run the "
                    "same command again to resume",
                    highlight=False,
                )
                raise typer.Exit(130) from None
            except SemMemError as exc:
                failures.append((path, exc))
                progress.update(task, description=f"{path.name} [red](failed)[/]")
                continue
            progress.update(task, completed=rows[-1]["chunks_created"] if rows else 0)
    if as_json:
        _json(rows)
    elif rows:
        table = Table("file", "kind", "pages", "chunks", "stored", "note")
        for r in rows:
            table.add_row(
                r["filename"],
                r["kind"],
                str(r["pages"]),
                str(r["chunks_created"]),
                str(r["chunks_stored"]),
                r["note"],
            )
        _out().print(table)
    if failures:
        for path, exc in failures:
            _err().print(f"[bold red]failed:[/] {path}: {_user_message(exc)}", highlight=False)
        first = failures[0][1]
        raise typer.Exit(next(c for cls, c in EXIT_CODES if isinstance(first, cls)))


def _user_message(exc: SemMemError) -> str:
    return str(exc).replace("[", r"\[")


def _ingest_one(
    memory: Any,
    path: Path,
    report: Any,
    chunk_chars: int,
    overlap_chars: int,
) -> list[dict[str, Any]]:
    """Store one file; returns its result rows (one per thread of a chat export)."""
    from .ingest.chat_export import is_chat_export, read_chat_export

    if not path.is_file():
        raise ValidationError(f"not a file: {path}" if path.exists() else f"no such file: {path}")
    if not is_chat_export(path):
        result = memory.ingest_pdf(
            path, chunk_chars=chunk_chars, overlap_chars=overlap_chars, progress=report
        )
        return [result.to_dict()]
    rows = []
    for thread_id, turns in read_chat_export(path):
        before = len(memory)
        ids = memory.remember_conversation(turns, thread_id=thread_id, progress=report)
        rows.append(
            {
                "filename": path.name,
                "kind": "chat",
                "pages": 0,
                "chunks_created": len(ids),
                "chunks_stored": len(memory) - before,
                "thread_id": thread_id,
                "note": f"thread {thread_id}",
            }
        )
    return rows
