"""One place that turns exceptions into HTTP answers, chosen by exception *class*.

Every error body has the same shape and never contains a traceback::

    {"error": "limit_exceeded", "detail": "texts[3] has 120,000 characters; ...",
     "limit": "max_text_chars", "maximum": 100000, "actual": 120000}

=============================  ======  ==========================================
Exception                      Status  Why
=============================  ======  ==========================================
malformed JSON / multipart     400     the body cannot be parsed at all
AuthenticationRequired         401     no or unknown API key
NamespaceForbidden             403     key bound to another namespace; auth off
                                       and the request came in on a non-loopback
NotFoundError                  404     no such memory *in the caller's namespace*
ConflictError                  409     contradicts stored state
  EmbeddingMismatchError       409     store built with another embedding model
  SessionConflictError         409     a chat session kept changing while saved
LimitExceededError             413     names the limit, maximum and actual size
  BodyTooLarge                 413     a request body over its byte limit
ValidationError                422     bad input (the message names the field)
  DocumentError                422     damaged/encrypted/unsupported document (+reason)
ModelNotFoundError             422     the provider does not know the model asked for
ConfigurationError             503     the server is not set up for this (no chat model,
                                       a missing extra)
LLMError (others), EmbeddingError,     the provider or the store is failing; an
StorageError                   503     upstream key rejected is the *server's* problem,
                                       so it is 503, never 401
anything else                  500     logged with its traceback, answered without it
=============================  ======  ==========================================
"""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from .. import errors as core
from ..ingest import DocumentError

__all__ = [
    "STATUS_BY_CLASS",
    "AuthenticationRequired",
    "NamespaceForbidden",
    "error_response",
    "install_error_handlers",
]

log = logging.getLogger("sem_mem.server")


class AuthenticationRequired(Exception):
    """The request carries no API key, or one the server does not know (401)."""


class NamespaceForbidden(Exception):
    """The key is valid but may not act on what the request names (403)."""


#: most specific class first; the first class the exception is an instance of wins
STATUS_BY_CLASS: list[tuple[type[BaseException], int]] = [
    (AuthenticationRequired, 401),
    (NamespaceForbidden, 403),
    (core.LimitExceededError, 413),
    (DocumentError, 422),
    (core.ValidationError, 422),
    (core.NotFoundError, 404),
    (core.EmbeddingMismatchError, 409),
    (core.ConflictError, 409),
    (core.ModelNotFoundError, 422),
    (core.RateLimitError, 503),
    (core.LLMError, 503),
    (core.EmbeddingError, 503),
    (core.StorageError, 503),
    (core.ConfigurationError, 503),
    (core.SemMemError, 500),
]

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_CODES = {
    core.LimitExceededError: "limit_exceeded",
    core.NotFoundError: "not_found",
    core.AuthenticationError: "upstream_authentication_failed",
    core.RateLimitError: "upstream_rate_limited",
    core.ProviderUnavailableError: "upstream_unavailable",
}


def _code(exc: BaseException) -> str:
    for cls in type(exc).__mro__:
        if cls in _CODES:
            return _CODES[cls]
    return _CAMEL.sub("_", type(exc).__name__).lower()


def status_for(exc: BaseException) -> int:
    """The HTTP status for an exception class (500 when none matches)."""
    if isinstance(exc, HTTPException) and not isinstance(exc, core.SemMemError):
        return exc.status_code
    for cls, status in STATUS_BY_CLASS:
        if isinstance(exc, cls):
            return status
    return 500


def error_response(exc: BaseException) -> JSONResponse:
    """The JSON answer for ``exc`` (never a traceback; 500s say nothing about internals)."""
    status = status_for(exc)
    headers: dict[str, str] = {}
    body: dict[str, Any]
    if status >= 500 and not isinstance(exc, core.SemMemError | HTTPException):
        body = {"error": "internal_error", "detail": "internal server error"}
    elif isinstance(exc, HTTPException) and not isinstance(exc, core.SemMemError):
        body = {"error": _http_code(exc.status_code), "detail": str(exc.detail)}
        headers.update(exc.headers or {})
    else:
        body = {"error": _code(exc), "detail": str(exc)}
    if isinstance(exc, core.LimitExceededError):
        body.update(limit=exc.limit, maximum=exc.maximum, actual=exc.actual)
    if isinstance(exc, DocumentError):
        body.update(reason=exc.reason, file=exc.file)
    if isinstance(exc, AuthenticationRequired):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, core.RateLimitError | core.ProviderUnavailableError):
        headers["Retry-After"] = "5"
    return JSONResponse(body, status_code=status, headers=headers or None)


def _http_code(status: int) -> str:
    return {
        400: "malformed_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "limit_exceeded",
        415: "unsupported_media_type",
    }.get(status, "http_error")


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse(
            {"error": "malformed_request", "detail": "the request body is not valid JSON"},
            status_code=400,
        )
    details = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in errors
    ]
    summary = "; ".join(f"{'.'.join(str(p) for p in d['loc'])}: {d['msg']}" for d in details[:5])
    return JSONResponse(
        {"error": "validation_error", "detail": summary, "errors": details}, status_code=422
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers: one for every error class, by class."""

    async def handle(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, RequestValidationError):
            return _validation_response(exc)
        if status_for(exc) >= 500:
            log.error(
                "%s %s failed: %s",
                request.method,
                request.url.path,
                type(exc).__name__,
                exc_info=exc,
            )
        return error_response(exc)

    for cls in (
        core.SemMemError,
        AuthenticationRequired,
        NamespaceForbidden,
        HTTPException,
        RequestValidationError,
        Exception,
    ):
        app.add_exception_handler(cls, handle)
