"""The MCP edge: Sem-Mem as Model Context Protocol tools for agents.

``sem-mem mcp`` (or ``python -m sem_mem.mcp_server``) opens one
:class:`~sem_mem.core.SemanticMemory` on a storage directory and namespace and serves
seven tools over stdio, or over streamable HTTP with ``--http``::

    remember  remember_conversation  recall  forget  list_memories  add_instruction
    get_instructions

It is a thin edge over the core, built on the official ``mcp`` Python SDK (2.x,
``MCPServer``): each tool is a typed function whose signature and docstring become the
tool's JSON schema and description; the SDK validates arguments against that schema and
runs these blocking functions in worker threads. Errors are translated here, by class:
a :class:`~sem_mem.errors.SemMemError` becomes a tool error (``isError: true``) whose text
names the error class and carries its message; anything else is reported by the SDK as
a generic tool error and logged with its traceback to stderr. stdout is never written to:
in stdio mode it is the protocol channel.

Nothing happens at import time; ``mcp`` is imported when the server is built, and a
missing SDK gives a :class:`~sem_mem.errors.ConfigurationError` naming the extra.
``docs/mcp.md`` shows the client configuration.
"""

# No ``from __future__ import annotations`` here, on purpose: the SDK reads each tool's
# signature with ``inspect.signature(eval_str=True)``, which cannot see the names
# (pydantic's ``Field``, the result models) that ``build_server`` imports and defines
# locally to keep ``mcp`` and pydantic out of import time. Evaluated annotations avoid that.

import argparse
import inspect
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn, TypeVar

from .errors import ConfigurationError, SemMemError

if TYPE_CHECKING:  # pragma: no cover
    from mcp.server.mcpserver import MCPServer

    from .core import SemanticMemory
    from .types import Memory

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "TOOL_NAMES", "build_server", "main"]

log = logging.getLogger("sem_mem.mcp")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
#: the tools every server exposes, in the order they are registered
TOOL_NAMES = (
    "remember",
    "remember_conversation",
    "recall",
    "forget",
    "list_memories",
    "add_instruction",
    "get_instructions",
)
#: largest ``limit`` a recall or a listing accepts over MCP (results go into a model's context)
MAX_RECALL_RESULTS = 50
#: most turns one remember_conversation call stores
MAX_CONVERSATION_TURNS = 1000
MAX_LIST_RESULTS = 100
_INSTALL_HINT = 'pip install "sem-mem[mcp]"'

T = TypeVar("T")


def _require_sdk() -> None:
    """Raise ConfigurationError unless the MCP SDK (2.x, with ``MCPServer``) is importable."""
    try:
        import mcp.server.mcpserver  # noqa: F401
    except ImportError as exc:
        raise ConfigurationError(
            f"the MCP server needs the official MCP Python SDK 2.x: {_INSTALL_HINT} ({exc})"
        ) from exc


def _call(operation: Callable[[], T]) -> T:
    """Run one core operation; a SemMemError becomes the SDK's ToolError (an isError result).

    The message keeps the error class so an agent can tell bad input
    (``ValidationError``, ``LimitExceededError``) from a missing id (``NotFoundError``).
    Any other exception propagates: the SDK answers with a generic tool error and logs it.
    """
    from mcp.server.mcpserver.exceptions import ToolError

    try:
        return operation()
    except SemMemError as exc:
        raise ToolError(f"{type(exc).__name__}: {exc}") from exc


def build_server(memory: "SemanticMemory") -> "MCPServer":
    """An MCP server exposing ``memory`` (one namespace of one store) as seven tools.

    The caller owns ``memory``: it stays open while the server runs and is closed by
    whoever opened it (:func:`main` does both).
    """
    _require_sdk()
    from mcp.server.mcpserver import MCPServer
    from mcp.types import ToolAnnotations
    from pydantic import BaseModel, Field

    from . import __version__

    max_chars = memory.settings.max_text_chars
    namespace = memory.namespace

    class Stored(BaseModel):
        id: str = Field(description="The memory's id (use it with forget).")
        stored: bool = Field(description="Always true: the memory is committed to disk.")

    class Recalled(BaseModel):
        id: str = Field(description="The memory's id.")
        text: str = Field(description="The remembered text.")
        score: float = Field(description="Ranking score, higher is better (fused in hybrid mode).")
        similarity: float = Field(description="Cosine similarity to the query, -1..1.")
        created_at: str = Field(description="When it was stored (ISO 8601, UTC).")
        happened_at: str = Field(description="When it happened or was said (ISO 8601, UTC).")
        source: str = Field(description="How it was stored: manual, auto, pdf, document, ...")
        speaker: str | None = Field(description="Who said it, for a conversation turn.")
        thread_id: str | None = Field(description="The conversation it belongs to, if any.")
        metadata: dict[str, Any] = Field(description="The metadata stored with it.")

    class Turn(BaseModel):
        speaker: str = Field(min_length=1, max_length=200, description="Who said it.")
        text: str = Field(min_length=1, max_length=max_chars, description="What was said.")
        timestamp: str | None = Field(
            default=None, description="When it was said (ISO 8601); default: the call's."
        )

    class StoredConversation(BaseModel):
        ids: list[str] = Field(description="One memory id per turn, in order.")
        thread_id: str = Field(description="The conversation's thread id.")

    class Recollections(BaseModel):
        memories: list[Recalled] = Field(description="Matching memories, best first.")

    class Listed(BaseModel):
        id: str = Field(description="The memory's id.")
        text: str = Field(description="The remembered text.")
        created_at: str = Field(description="When it was stored (ISO 8601, UTC).")
        source: str = Field(description="How it was stored: manual, auto, pdf, document, ...")
        metadata: dict[str, Any] = Field(description="The metadata stored with it.")

    class Page(BaseModel):
        memories: list[Listed] = Field(description="This page of memories, newest first.")
        total: int = Field(description="How many memories the namespace holds in all.")
        offset: int = Field(description="The offset this page starts at.")

    class Forgotten(BaseModel):
        id: str = Field(description="The id that was deleted.")
        forgotten: bool = Field(description="Always true: the memory is gone for good.")

    class InstructionAdded(BaseModel):
        instruction: str = Field(description="The instruction line as stored (trimmed).")
        added: bool = Field(description="False when the same line was already there.")

    class Instructions(BaseModel):
        instructions: str = Field(description="All persistent instructions, one per line.")

    def listed(m: "Memory") -> Listed:
        return Listed(
            id=m.id,
            text=m.text,
            created_at=m.created_at.isoformat(),
            source=m.source,
            metadata=m.metadata,
        )

    server: MCPServer = MCPServer(
        "sem-mem",
        title="Sem-Mem semantic memory",
        version=__version__,
        instructions=(
            f"Long-term semantic memory (namespace {namespace!r}). Call recall before answering "
            "questions that may depend on what the user told you earlier; call remember for "
            "durable facts and preferences worth keeping across conversations; "
            "get_instructions returns standing instructions to follow."
        ),
    )
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    def tool(annotations: ToolAnnotations) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Register a tool; its cleaned docstring is the description clients show the model."""

        def register(fn: Callable[..., T]) -> Callable[..., T]:
            server.add_tool(
                fn, description=inspect.cleandoc(fn.__doc__ or ""), annotations=annotations
            )
            return fn

        return register

    @tool(ToolAnnotations(idempotent_hint=True, open_world_hint=False))
    def remember(
        text: Annotated[
            str,
            Field(
                min_length=1,
                max_length=max_chars,
                description="The fact, preference or note to store, as a self-contained sentence.",
            ),
        ],
        metadata: Annotated[
            dict[str, Any] | None,
            Field(description="Optional JSON object stored with the memory (e.g. tags)."),
        ] = None,
    ) -> Stored:
        """Store a memory for later recall; returns its id.

        Storing the same text with the same metadata again refreshes the existing memory
        and returns its id instead of adding a duplicate.
        """
        return Stored(id=_call(lambda: memory.remember(text, metadata)), stored=True)

    @tool(read_only)
    def recall(
        query: Annotated[
            str,
            Field(
                min_length=1,
                max_length=max_chars,
                description="What to look for, in natural language.",
            ),
        ],
        limit: Annotated[
            int,
            Field(ge=1, le=MAX_RECALL_RESULTS, description="Most memories to return."),
        ] = 5,
        threshold: Annotated[
            float | None,
            Field(
                ge=-1.0,
                le=1.0,
                description="Drop memories whose cosine similarity to the query is below this.",
            ),
        ] = None,
        mode: Annotated[
            Literal["hybrid", "vector", "lexical"],
            Field(
                description=(
                    "hybrid fuses meaning and keyword search (best in general); vector is "
                    "meaning only; lexical is keywords only."
                )
            ),
        ] = "hybrid",
        source: Annotated[
            str | None,
            Field(description="Only memories of this source: manual, auto, thread, pdf, ..."),
        ] = None,
        metadata: Annotated[
            dict[str, Any] | None,
            Field(description="Only memories whose metadata has all these key/values."),
        ] = None,
        since: Annotated[
            str | None,
            Field(description="Only what happened at or after this time (ISO 8601)."),
        ] = None,
        until: Annotated[
            str | None,
            Field(description="Only what happened before this time (ISO 8601)."),
        ] = None,
        rerank: Annotated[
            bool | None,
            Field(
                description=(
                    "Reorder the best 25 candidates with a cross-encoder: better ordering, "
                    "~0.25 s slower. Omit to use the server's setting."
                )
            ),
        ] = None,
    ) -> Recollections:
        """Find the stored memories most relevant to a query, best first.

        The filters restrict the search itself, so a matching memory is found even when
        many others are closer to the query.
        """
        found = _call(
            lambda: memory.recall(
                query,
                limit,
                threshold=threshold,
                mode=mode,
                source=source,
                metadata=metadata,
                since=since,
                until=until,
                rerank=rerank,
            )
        )
        return Recollections(
            memories=[
                Recalled(
                    id=r.id,
                    text=r.text,
                    score=round(r.score, 6),
                    similarity=round(r.similarity, 6),
                    created_at=r.created_at.isoformat(),
                    happened_at=r.happened_at.isoformat(),
                    source=r.source,
                    speaker=r.speaker,
                    thread_id=r.thread_id,
                    metadata=r.metadata,
                )
                for r in found
            ]
        )

    @tool(ToolAnnotations(idempotent_hint=True, open_world_hint=False))
    def remember_conversation(
        turns: Annotated[
            list[Turn],
            Field(
                min_length=1,
                max_length=MAX_CONVERSATION_TURNS,
                description="The conversation's turns, oldest first.",
            ),
        ],
        thread_id: Annotated[
            str | None,
            Field(
                max_length=256,
                description="The conversation's id; turns added later with the same id "
                "continue it. Generated when omitted.",
            ),
        ] = None,
        timestamp: Annotated[
            str | None,
            Field(description="When the conversation happened (ISO 8601), for turns without one."),
        ] = None,
    ) -> StoredConversation:
        """Store a conversation, one memory per turn ("Speaker: text"), in order.

        Recall can then find who said what and when, and filter on source="thread".
        """
        import uuid

        thread = thread_id or uuid.uuid4().hex
        rows = [t.model_dump(exclude_none=True) for t in turns]
        ids = _call(
            lambda: memory.remember_conversation(rows, thread_id=thread, timestamp=timestamp)
        )
        return StoredConversation(ids=ids, thread_id=thread)

    @tool(ToolAnnotations(destructive_hint=True, idempotent_hint=False, open_world_hint=False))
    def forget(
        id: Annotated[
            str,
            Field(
                min_length=1, description="The id of the memory, as returned by remember or recall."
            ),
        ],
    ) -> Forgotten:
        """Delete one memory for good. Fails if there is no memory with that id."""
        _call(lambda: memory.forget(id))
        return Forgotten(id=id, forgotten=True)

    @tool(read_only)
    def list_memories(
        limit: Annotated[
            int,
            Field(ge=1, le=MAX_LIST_RESULTS, description="Most memories to return."),
        ] = 20,
        offset: Annotated[
            int,
            Field(ge=0, description="How many of the newest memories to skip (for paging)."),
        ] = 0,
    ) -> Page:
        """List stored memories, newest first, one page at a time."""
        page = _call(lambda: memory.list(limit=limit, offset=offset))
        return Page(
            memories=[listed(m) for m in page], total=_call(lambda: len(memory)), offset=offset
        )

    @tool(ToolAnnotations(idempotent_hint=True, open_world_hint=False))
    def add_instruction(
        text: Annotated[
            str,
            Field(
                min_length=1,
                max_length=max_chars,
                description="One standing instruction, e.g. 'Answer in British English.'",
            ),
        ],
    ) -> InstructionAdded:
        """Add a persistent instruction line (kept across conversations; never duplicated)."""
        line = text.strip()
        before = _call(lambda: memory.instructions)
        _call(lambda: memory.add_instruction(text))
        known = {existing.strip() for existing in before.splitlines()}
        return InstructionAdded(instruction=line, added=line not in known)

    @tool(read_only)
    def get_instructions() -> Instructions:
        """Return the persistent instructions to follow, one per line (empty if none)."""
        return Instructions(instructions=_call(lambda: memory.instructions).strip())

    return server


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sem-mem mcp",
        description=(
            "Serve a Sem-Mem namespace to MCP clients (Claude Desktop, Claude Code, Cursor, ...) "
            "over stdio, or over streamable HTTP with --http."
        ),
    )
    parser.add_argument(
        "--storage-dir",
        "-d",
        help="memory directory (default: MEMORY_STORAGE_DIR or ./local_memory); "
        "MCP clients start servers in an arbitrary directory, so give an absolute path",
    )
    parser.add_argument(
        "--namespace",
        "-n",
        help="the namespace the tools read and write (default: SEMMEM_NAMESPACE or 'default')",
    )
    parser.add_argument(
        "--http",
        action="store_true",
        help="serve streamable HTTP at http://HOST:PORT/mcp instead of stdio",
    )
    parser.add_argument(
        "--host", default=DEFAULT_HOST, help=f"HTTP bind address (default: {DEFAULT_HOST})"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"HTTP port (default: {DEFAULT_PORT}; 0: a free port, named in the log)",
    )
    parser.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="allow a non-loopback --host (the MCP endpoint has no authentication: anyone "
        "who can reach it can read and write this namespace)",
    )
    return parser


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _configure_logging() -> None:
    """Log to stderr only: in stdio mode stdout carries the protocol."""
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the MCP server until the client disconnects (stdio) or it is stopped (HTTP).

    Returns the process exit code, as the ``sem-mem`` CLI does: 0 after a normal
    shutdown, 2 for bad arguments, 4 for a configuration error (a missing SDK, bad
    settings), 1 when the store cannot be opened; the reason goes to stderr.
    """
    args = _parser().parse_args(argv)
    if not 0 <= args.port < 65536:
        return _fail(f"--port must be 0-65535, got {args.port}", 2)
    if args.http and not _is_loopback(args.host) and not args.allow_unauthenticated:
        return _fail(
            f"refusing to serve MCP on {args.host}: it has no authentication; "
            "pass --allow-unauthenticated (behind a proxy that authenticates) or use 127.0.0.1",
            2,
        )
    _configure_logging()
    try:
        _require_sdk()
        from .core import SemanticMemory

        memory = SemanticMemory(args.storage_dir, namespace=args.namespace)
    except ConfigurationError as exc:
        return _fail(str(exc), 4)
    except SemMemError as exc:
        return _fail(str(exc), 1)
    previous = _stop_on_sigterm()
    interrupted = False
    try:
        server = build_server(memory)
        if args.http:
            _serve_http(server, memory, args.host, args.port)
        else:
            _log_serving(memory, "stdio")
            server.run("stdio")
    except KeyboardInterrupt:
        interrupted = True
    finally:
        memory.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if interrupted and not args.http:
        _exit_now()
    return 0


def _log_serving(memory: "SemanticMemory", where: str) -> None:
    log.info(
        "serving namespace %r of %s over %s",
        memory.namespace,
        memory.settings.storage_dir,
        where,
    )


def _serve_http(server: "MCPServer", memory: "SemanticMemory", host: str, port: int) -> None:
    """Streamable HTTP on a socket bound and listening before the log line names it.

    The SDK's ``run("streamable-http")`` lets uvicorn bind, after the server said where it
    would listen; binding here first makes ``--port 0`` usable (the line gives the port
    the system chose) and a client may connect as soon as the line is written.
    """
    import anyio
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host.strip("[]"), port), family=family, backlog=128)
    with sock:
        bound = sock.getsockname()[1]
        shown = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
        _log_serving(memory, f"http://{shown}:{bound}/mcp")
        app = server.streamable_http_app(host=host)
        config = uvicorn.Config(app, log_level=server.settings.log_level.lower())
        anyio.run(uvicorn.Server(config).serve, [sock])


def _fail(message: str, code: int) -> int:
    print(f"sem-mem mcp: error: {message}", file=sys.stderr)
    return code


def _exit_now() -> NoReturn:
    """Leave the process after Ctrl-C or SIGTERM in stdio mode; the store is closed already.

    The SDK reads stdin in a worker thread; while the client keeps the pipe open that
    read never returns, and the interpreter would wait for the thread forever at exit.
    """
    logging.shutdown()
    sys.stderr.flush()
    os._exit(0)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_sigterm() -> Any:
    """Treat SIGTERM like Ctrl-C, so a terminated server still closes its store.

    Returns the previous handler (None when not on the main thread, where signal
    handlers cannot be set). uvicorn re-raises the signal after its graceful shutdown;
    this handler turns it into the KeyboardInterrupt that :func:`main` expects.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _interrupt)


if __name__ == "__main__":
    sys.exit(main())
