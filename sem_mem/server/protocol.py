"""uvicorn options for slow or idle clients: a header timeout, keep-alive, a connection cap.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) and concurrent
connections (``limit_concurrency``: over it, 503), but it waits forever for a request's
headers: 3,000 connections sending partial headers stayed open indefinitely. The
protocol class below adds that one missing timeout to uvicorn's own HTTP protocol
(written here because uvicorn has no such option): a connection whose request head is
not complete ``header_timeout`` seconds after it opened, or after its previous
response, is closed.

``sem-mem serve`` uses :func:`uvicorn_options`. With ``uvicorn server:app`` pass them
yourself: ``--http sem_mem.server.protocol:HeaderTimeoutProtocol --timeout-keep-alive 5
--limit-concurrency 1000`` (``docs/server.md``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .limits import ServerConfig

__all__ = [
    "HeaderTimeoutProtocol",
    "configured_header_timeout",
    "header_timeout_protocol",
    "uvicorn_options",
]


def _base() -> type[asyncio.Protocol]:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    except ImportError:  # httptools is optional in uvicorn
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol


def header_timeout_protocol(
    header_timeout: float, base: type[asyncio.Protocol] | None = None
) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (``base``, default httptools or h11) with a header timeout."""
    parent: Any = base or _base()

    class Protocol(parent):  # type: ignore[misc]
        _head_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            before = self.cycle
            super().data_received(data)
            if self.cycle is not None and self.cycle is not before:
                self._disarm()  # a request's head is complete
            elif self._head_timer is None and self._between_requests():
                self._arm()  # the first bytes of the next request head

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _between_requests(self) -> bool:
            return self.cycle is None or bool(self.cycle.response_complete)

        def _arm(self) -> None:
            self._disarm()
            self._head_timer = self.loop.call_later(header_timeout, self._expire)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _expire(self) -> None:
            self._head_timer = None
            if self._between_requests() and not self.transport.is_closing():
                self.transport.close()

    Protocol.__name__ = Protocol.__qualname__ = f"HeaderTimeout{parent.__name__}"
    return Protocol


def configured_header_timeout() -> float:
    """``SEMMEM_HEADER_TIMEOUT`` in seconds, read with the settings' precedence
    (environment > ``.env`` > Streamlit secrets), else the default (10)."""
    return float(ServerConfig.from_env().header_timeout)


class _FromEnvironment:
    """``--http sem_mem.server.protocol:HeaderTimeoutProtocol`` for plain ``uvicorn``:
    built on first use with ``SEMMEM_HEADER_TIMEOUT`` (seconds, default 10)."""

    _cls: type[asyncio.Protocol] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> asyncio.Protocol:
        if self._cls is None:
            self._cls = header_timeout_protocol(configured_header_timeout())
        return self._cls(*args, **kwargs)


HeaderTimeoutProtocol = _FromEnvironment()


def uvicorn_options(config: ServerConfig) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` / ``uvicorn.Config`` from ``config``."""
    return {
        "http": header_timeout_protocol(config.header_timeout),
        "timeout_keep_alive": config.keep_alive_timeout,
        "limit_concurrency": config.max_connections,
    }
