"""The FastAPI server: a thin HTTP edge over :class:`sem_mem.SemanticMemory`.

``create_app(settings)`` builds an application; ``app`` is built on first access
(``uvicorn sem_mem.server:app`` looks it up with ``getattr``), so importing this
package reads no configuration and opens no store. See ``docs/server.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .factory import ServerConfig, create_app

if TYPE_CHECKING:
    from fastapi import FastAPI

    app: FastAPI

__all__ = ["ServerConfig", "app", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        built = create_app()
        globals()["app"] = built
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
