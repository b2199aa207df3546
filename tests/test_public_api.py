"""What ``import sem_mem`` offers: every public name resolves, lazily, to the real thing."""

from __future__ import annotations

import typing

import pytest
from conftest import run_python

import sem_mem
from sem_mem import AsyncSemanticMemory, SmartCache, ValidationError
from sem_mem.types import SOURCES, Memory, Source


def test_every_public_name_resolves() -> None:
    missing = [name for name in sem_mem.__all__ if getattr(sem_mem, name, None) is None]
    assert missing == []
    assert {"AsyncSemanticMemory", "StorageBackend", "ChatModel"} <= set(sem_mem.__all__)


def test_the_extension_points_are_the_classes_to_subclass() -> None:
    from sem_mem.async_core import AsyncSemanticMemory as Async
    from sem_mem.backends.base import StorageBackend
    from sem_mem.backends.sqlite import SQLiteBackend
    from sem_mem.llm.base import ChatModel
    from sem_mem.llm.responses import ResponsesChatModel

    assert sem_mem.AsyncSemanticMemory is Async
    assert (
        issubclass(SQLiteBackend, sem_mem.StorageBackend)
        and sem_mem.StorageBackend is StorageBackend
    )
    assert issubclass(ResponsesChatModel, sem_mem.ChatModel) and sem_mem.ChatModel is ChatModel


def test_the_new_names_load_nothing_at_import() -> None:
    out = run_python(
        "import sys, sem_mem\n"
        "print([m for m in ('sem_mem.async_core', 'sem_mem.backends.base', 'sem_mem.llm.base',"
        " 'sem_mem.core', 'numpy') if m in sys.modules])"
    )
    assert out.stdout.strip() == "[]"


def test_bad_cache_and_concurrency_settings_are_validation_errors() -> None:
    with pytest.raises(ValidationError, match="capacity"):
        SmartCache(-1)
    with pytest.raises(ValidationError, match="protected_ratio"):
        SmartCache(10, protected_ratio=1.5)
    with pytest.raises(ValidationError, match="max_concurrency"):
        AsyncSemanticMemory.wrap(None, max_concurrency=0)  # type: ignore[arg-type]


def test_memory_source_is_typed_with_the_one_source_literal() -> None:
    assert typing.get_type_hints(Memory)["source"] == Source
    assert "import" in SOURCES and "thread" in SOURCES
