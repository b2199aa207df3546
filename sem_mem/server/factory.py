"""``create_app(settings)``: the FastAPI application factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from .. import __version__
from ..config import Settings, resolve_settings
from ..embedders.base import Embedder
from .auth import NamespaceRegistry
from .errors import install_error_handlers
from .limits import BodyLimitMiddleware, ServerConfig
from .metrics import Metrics, MetricsMiddleware
from .routes import router as seed_router
from .routes_chat import router as chat_router
from .routes_memories import router as memories_router

__all__ = ["ServerConfig", "create_app"]

log = logging.getLogger("sem_mem.server")

DESCRIPTION = """Tiered semantic memory over HTTP: L1 SmartCache, L2 HNSW + full text.

Authenticate with `Authorization: Bearer <key>` when `SEMMEM_API_KEYS` is set; each key is
bound to one namespace. Errors have the shape `{"error": ..., "detail": ...}`.
"""


def auth_banner(registry: NamespaceRegistry, config: ServerConfig) -> str:
    """The line the server logs (and ``sem-mem serve`` prints) about authentication."""
    if registry.auth_enabled:
        namespaces = sorted(set(registry.api_keys.values()))
        return f"API keys configured: {len(registry.api_keys)} key(s), namespaces {namespaces}"
    if config.allow_unauthenticated:
        return "authentication is OFF and non-loopback requests are allowed (explicit opt-in)"
    return (
        "authentication is off (no SEMMEM_API_KEYS): listening for 127.0.0.1 only; "
        "requests arriving on any other address are refused"
    )


def create_app(
    settings: Settings | None = None,
    *,
    embedder: Embedder | None = None,
    config: ServerConfig | None = None,
) -> FastAPI:
    """Build the application. Nothing is opened until the server starts.

    ``settings`` default to :func:`sem_mem.config.resolve_settings` (environment, ``.env``);
    ``config`` (limits, CORS, exposure) to :meth:`ServerConfig.from_env`. ``embedder``
    overrides the configured embedder (tests pass a small deterministic one).
    """
    settings = settings if settings is not None else resolve_settings()
    config = config if config is not None else ServerConfig.from_env()
    registry = NamespaceRegistry(
        settings, embedder=embedder, max_concurrency=config.max_concurrency
    )
    metrics = Metrics(registry.open_memories)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.warning("sem-mem server: %s", auth_banner(registry, config))
        await asyncio.to_thread(registry.open, settings.namespace)  # fail fast on a bad store
        try:
            yield
        finally:
            await asyncio.to_thread(registry.close)

    app = FastAPI(
        title="Sem-Mem",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by _offline_docs, from the package instead of a CDN
        redoc_url=None,
        responses={
            401: {"description": "Missing or unknown API key"},
            403: {"description": "Namespace not allowed for this key"},
            413: {"description": "Over a documented limit"},
            422: {"description": "Invalid input"},
            503: {"description": "Store, embedder or chat provider unavailable"},
        },
    )
    app.state.settings = settings
    app.state.config = config
    app.state.registry = registry
    app.state.metrics = metrics
    install_error_handlers(app)
    _offline_docs(app)
    app.include_router(seed_router)
    app.include_router(chat_router)
    app.include_router(memories_router)
    app.add_middleware(BodyLimitMiddleware, config=config)
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-SemMem-Namespace"],
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _offline_docs(app: FastAPI) -> None:
    """``/docs`` with Swagger UI's files served by this server (FastAPI's default loads
    them from a CDN, so the page is blank offline). Falls back to the CDN page when the
    ``swagger-ui-bundle`` package (in the ``server`` extra) is missing."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse

    try:
        from fastapi.staticfiles import StaticFiles
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        static = None
        log.info("swagger-ui-bundle is not installed: /docs loads Swagger UI from a CDN")
    else:
        static = "/docs-static"
        app.mount(static, StaticFiles(directory=swagger_ui_path), name="docs-static")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        if static is None:
            return get_swagger_ui_html(openapi_url="/openapi.json", title="Sem-Mem API")
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Sem-Mem API",
            swagger_js_url=f"{static}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/swagger-ui.css",
            swagger_favicon_url=f"{static}/favicon-32x32.png",
        )
