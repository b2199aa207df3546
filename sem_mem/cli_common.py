"""What every ``sem-mem`` command shares: consoles, options, error handling, opening
the memory, progress display and id/time parsing (see :mod:`sem_mem.cli`)."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from .errors import ConfigurationError, NotFoundError, SemMemError, ValidationError
from .validation import parse_json_object

#: exit code by error class (first match wins); Typer's own usage errors exit with 2
EXIT_CODES: list[tuple[type[SemMemError], int]] = [
    (NotFoundError, 3),
    (ValidationError, 2),
    (ConfigurationError, 4),
    (SemMemError, 1),
]


@functools.cache
def _out() -> Console:
    return Console(soft_wrap=True)


@functools.cache
def _err() -> Console:
    return Console(stderr=True, soft_wrap=True)


StorageDir = Annotated[
    str | None,
    typer.Option(
        "--storage-dir",
        "-d",
        help="Memory directory (default: MEMORY_STORAGE_DIR or ./local_memory)",
    ),
]
Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Namespace (default: SEMMEM_NAMESPACE or 'default')"),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


def _fail(message: str, code: int) -> typer.Exit:
    _err().print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Print a SemMemError as one line and exit with its class's code."""
    try:
        yield
    except SemMemError as exc:
        code = next(c for cls, c in EXIT_CODES if isinstance(exc, cls))
        raise _fail(str(exc).replace("[", r"\["), code) from None


@contextmanager
def _memory(ctx: typer.Context, storage_dir: str | None, namespace: str | None) -> Iterator[Any]:
    """Open the memory (errors handled), yield it, close it."""
    from .core import SemanticMemory

    obj = ctx.obj or {}
    with _errors():
        memory = SemanticMemory(
            storage_dir,
            namespace=namespace,
            embedder=obj.get("embedder"),
            chat_api=obj.get("chat_api"),
            reranker=obj.get("reranker"),
        )
        try:
            yield memory
        finally:
            memory.close()


def _json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2, default=str) + "\n")


def _parse_metadata(raw: str | None) -> dict[str, Any] | None:
    return parse_json_object(raw, field="--metadata", example='{"topic": "cardio"}')


def _short(text: str, width: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class _RateColumn(ProgressColumn):
    """Items per second (Rich's own speed column counts bytes)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.1f}/s", style="progress.data.speed")


def _progress(*, disable: bool = False) -> Progress:
    """A progress display on stderr with count, rate, elapsed time and ETA."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=_err(),
        disable=disable,
    )


def _full_id(memory: Any, memory_id: str) -> str:
    """The id ``memory_id`` starts, when exactly one memory's id does (as ``recall`` prints)."""
    if len(memory_id) >= 32:
        return memory_id
    matches = memory.backend.ids_with_prefix(memory.namespace, memory_id, limit=2)
    if not matches:
        raise NotFoundError(f"no memory whose id starts with {memory_id!r}")
    if len(matches) > 1:
        raise ValidationError(f"{memory_id!r} is the start of several ids: give more of it")
    return str(matches[0])


def _when(value: str | None, option: str) -> str | None:
    """An ISO 8601 date/time option, checked here so the error names the option."""
    if value is None:
        return None
    from .validation import clean_timestamp

    try:
        clean_timestamp(value, option)
    except ValidationError as exc:
        raise ValidationError(f"{option}: {exc}") from None
    return value
