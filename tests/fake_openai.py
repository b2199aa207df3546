"""A small, honest stand-in for the OpenAI HTTP API, for tests.

``FakeOpenAI`` is a real HTTP server on 127.0.0.1 (an ephemeral port, a background
thread) that speaks OpenAI's wire format for::

    POST /v1/embeddings         deterministic bag-of-words hashing vectors
    POST /v1/responses          Responses API (output_text, usage, previous_response_id)
    POST /v1/chat/completions   Chat Completions
    GET  /v1/models             the known models

and records every request it receives (method, path, headers, parsed JSON body) in
:attr:`FakeOpenAI.requests`, faulted ones included. Tests point the official ``openai``
SDK at :attr:`FakeOpenAI.base_url` and assert on what was sent and what came back::

    with FakeOpenAI(api_key="sk-test") as server:
        client = openai.OpenAI(api_key="sk-test", base_url=server.base_url)
        server.fail_next(429)                  # the next request is rate limited
        server.delay_next(2.0)                 # ... and the one after is slow
        server.responder = lambda body: "42"   # scripted answers
        server.responder = lambda body: ToolCall("recall", {"query": "diet"})  # a tool call

Behaviour that mirrors the real service, so client code is tested honestly:

* a wrong ``Authorization`` key gets 401 ``invalid_api_key`` (when ``api_key`` is set);
* a model outside ``known_models`` gets 404 ``model_not_found`` (when it is set);
* an unknown ``previous_response_id`` gets 400 ``previous_response_not_found``;
* ``dimensions`` for ``text-embedding-ada-002`` gets 400 (that model cannot shorten);
* embeddings come back as base64 float32 when ``encoding_format`` is ``"base64"``
  (what the SDK sends by default) and as JSON floats otherwise.

Nothing here touches the network beyond 127.0.0.1; :meth:`FakeOpenAI.stop` wakes
delayed handlers, closes open keep-alive connections and joins every thread.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import numpy as np

__all__ = [
    "DEFAULT_EMBEDDING_DIMENSIONS",
    "ECHO_MARKER",
    "FakeOpenAI",
    "Fault",
    "RecordedRequest",
    "ToolCall",
    "closed_port_url",
    "fake_embedding",
    "fake_openai",
]

#: every default answer starts with this, so tests can tell a fake answer apart
ECHO_MARKER = "[fake-openai]"
DEFAULT_EMBEDDING_DIMENSIONS = 1536
#: native sizes of well-known embedding models (others get ``default_dimensions``)
MODEL_DIMENSIONS: dict[str, int] = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
    "nomic-embed-text": 768,
    "all-minilm": 384,
}


@dataclass(frozen=True)
class ToolCall:
    """A function call a scripted responder asks the model to make.

    Answered as a ``function_call`` output item (Responses) or an assistant message with
    ``tool_calls`` (Chat Completions), as OpenAI does; the client runs the tool and sends
    its output back in the next request.
    """

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    call_id: str | None = None


#: a responder answers with text, or with one or more tool calls
Answer = str | ToolCall | list[ToolCall]
Responder = Callable[[dict[str, Any]], Answer]

_TOKEN = re.compile(r"\w+", re.UNICODE)

_ERROR_BODIES: dict[int, tuple[str, str, str | None]] = {
    # status: (type, code, message) as OpenAI sends them
    400: ("invalid_request_error", "invalid_request", "Invalid request."),
    401: (
        "invalid_request_error",
        "invalid_api_key",
        (
            "Incorrect API key provided. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        ),
    ),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Forbidden."),
    404: ("invalid_request_error", "model_not_found", None),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached. Please try again later."),
    500: ("server_error", "server_error", "The server had an error while processing your request."),
    502: ("server_error", "bad_gateway", "Bad gateway."),
    503: ("server_error", "service_unavailable", "The engine is currently overloaded."),
}


def fake_embedding(text: str, dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS) -> np.ndarray:
    """The unit float32 vector the fake server returns for ``text``.

    A signed bag-of-words hashing vector: every lower-cased word adds +-1 to one
    coordinate chosen by a hash, so texts sharing words have a high cosine
    similarity and unrelated texts are near-orthogonal. Deterministic across runs
    and processes (blake2b, not Python's salted ``hash``).
    """
    vec = np.zeros(dimensions, dtype=np.float32)
    tokens = _TOKEN.findall(text.lower()) or [f"<raw:{text}>"]
    for token in tokens:
        digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
        value = int.from_bytes(digest, "little")
        vec[(value >> 1) % dimensions] += 1.0 if value & 1 else -1.0
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm else vec


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def api_key(self) -> str | None:
        """The bearer token sent, if any."""
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None


@dataclass(frozen=True)
class Fault:
    """What to do to one upcoming request instead of (or before) answering it.

    ``status`` answers with that HTTP error (and an OpenAI-shaped error body);
    ``delay`` sleeps that many seconds first (in the server thread), then answers
    normally, or with ``status`` if both are set. ``retry_after`` sets the
    ``Retry-After`` header (seconds) on the error answer.
    """

    status: int | None = None
    delay: float = 0.0
    retry_after: float | None = None
    message: str | None = None
    code: str | None = None


@dataclass
class _State:
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    response_ids: set[str] = field(default_factory=set)
    counter: int = 0


class FakeOpenAI:
    """A fake OpenAI server; use as a context manager or call start/stop.

    ``api_key``: when set, requests must send ``Authorization: Bearer <api_key>``.
    ``known_models``: when set, any other model gets 404 ``model_not_found``.
    ``responder``: ``callable(request_json) -> str | ToolCall | list[ToolCall]`` computing
    chat answers (text, or function calls for the client to run); the
    default echoes the last user input after :data:`ECHO_MARKER`.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        known_models: Iterable[str] | None = None,
        responder: Responder | None = None,
        default_dimensions: int = DEFAULT_EMBEDDING_DIMENSIONS,
    ) -> None:
        self.api_key = api_key
        self.known_models: set[str] | None = set(known_models) if known_models else None
        self.responder: Responder | None = responder
        self.default_dimensions = default_dimensions
        self._state = _State()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeOpenAI:
        """Bind 127.0.0.1 on a free port and serve in a background thread."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-openai",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: wake delayed handlers, close connections, join all threads."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        httpd.shutdown()
        thread.join()
        httpd.close_all()
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeOpenAI is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """The URL to give the SDK as ``base_url``, e.g. ``http://127.0.0.1:PORT/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------------ scripting
    def add_fault(self, fault: Fault, times: int = 1) -> None:
        """Apply ``fault`` to the next ``times`` requests (after any already queued)."""
        with self._lock:
            self._state.faults.extend([fault] * times)

    def fail_next(
        self,
        status: int,
        times: int = 1,
        *,
        retry_after: float | None = None,
        message: str | None = None,
        code: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests with HTTP ``status`` (401, 404, 429, 5xx...).

        429 answers carry ``Retry-After: 0`` unless ``retry_after`` says otherwise;
        ``message`` and ``code`` override the error body's defaults (e.g.
        ``code="insufficient_quota"``).
        """
        if status == 429 and retry_after is None:
            retry_after = 0
        fault = Fault(status=status, retry_after=retry_after, message=message, code=code)
        self.add_fault(fault, times)

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """Sleep ``seconds`` in the server thread before answering the next requests."""
        self.add_fault(Fault(delay=seconds), times)

    def clear_faults(self) -> None:
        with self._lock:
            self._state.faults.clear()

    @property
    def pending_faults(self) -> int:
        with self._lock:
            return len(self._state.faults)

    # ------------------------------------------------------------------ inspection
    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far, oldest first."""
        with self._lock:
            return list(self._state.requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Requests whose path ends with ``path`` (e.g. ``"/responses"``)."""
        return [r for r in self.requests if r.path.endswith(path)]

    def bodies(self, path: str) -> list[Any]:
        """The JSON bodies sent to ``path``, oldest first."""
        return [r.body for r in self.requests_to(path)]

    def reset(self) -> None:
        """Forget recorded requests and queued faults (issued response ids are kept)."""
        with self._lock:
            self._state.requests.clear()
            self._state.faults.clear()

    # ------------------------------------------------------------------ internals
    def _record(self, request: RecordedRequest) -> Fault | None:
        with self._lock:
            self._state.requests.append(request)
            return self._state.faults.popleft() if self._state.faults else None

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._state.counter += 1
            return f"{prefix}{self._state.counter:024x}"

    def _remember_response(self, response_id: str) -> None:
        with self._lock:
            self._state.response_ids.add(response_id)

    def _knows_response(self, response_id: str) -> bool:
        with self._lock:
            return response_id in self._state.response_ids

    def knows_response(self, response_id: str) -> bool:
        """True when this server answered with ``response_id`` (Responses API)."""
        return self._knows_response(response_id)

    def _sleep(self, seconds: float) -> None:
        self._stopping.wait(seconds)  # returns at once when the server stops


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    fake: FakeOpenAI

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()

    def track(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._connections.add(conn)
            self._handler_threads.add(threading.current_thread())

    def untrack(self, conn: socket.socket) -> None:
        with self._conn_lock:
            self._connections.discard(conn)
            self._handler_threads.discard(threading.current_thread())

    def close_all(self) -> None:
        """Close the listening socket and every open connection; join handler threads."""
        self.server_close()
        with self._conn_lock:
            conns = list(self._connections)
            threads = list(self._handler_threads)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(timeout=5)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK expects
    server: _Server
    timeout = 30  # an idle keep-alive connection gives up eventually

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this each request
        # waits ~45 ms for the client's delayed ACK
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    # ------------------------------------------------------------------ dispatch
    def do_GET(self) -> None:
        self._dispatch(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self._dispatch(body)

    def _dispatch(self, body: Any) -> None:
        fake = self.server.fake
        path = self.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        fault = fake._record(RecordedRequest(self.command, path, headers, body))
        if fault is not None and fault.delay:
            fake._sleep(fault.delay)
            if fake._stopping.is_set():
                self.close_connection = True
                return
        if fault is not None and fault.status is not None:
            model = body.get("model") if isinstance(body, dict) else None
            self._error(
                fault.status,
                fault.message,
                model=model,
                retry_after=fault.retry_after,
                code=fault.code,
            )
            return
        if fake.api_key is not None and headers.get("authorization") != f"Bearer {fake.api_key}":
            self._error(401)
            return
        routes: dict[tuple[str, str], Callable[[Any], None]] = {
            ("POST", "/v1/embeddings"): self._embeddings,
            ("POST", "/v1/responses"): self._responses,
            ("POST", "/v1/chat/completions"): self._chat_completions,
            ("GET", "/v1/models"): self._models,
        }
        route = routes.get((self.command, path))
        if route is None:
            self._error(404, f"Invalid URL ({self.command} {path})", code="unknown_url")
            return
        if self.command == "POST":
            if not isinstance(body, dict):
                self._error(400, "We could not parse the JSON body of your request.")
                return
            model = body.get("model")
            if not isinstance(model, str) or not model:
                self._error(400, "you must provide a model parameter", param="model")
                return
            if fake.known_models is not None and model not in fake.known_models:
                self._error(404, model=model)
                return
            if body.get("stream"):
                self._error(400, "the fake server does not stream", param="stream")
                return
        route(body)

    # ------------------------------------------------------------------ endpoints
    def _models(self, _body: Any) -> None:
        names = sorted(self.server.fake.known_models or MODEL_DIMENSIONS)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "fake-openai"}
            for name in names
        ]
        self._json(200, {"object": "list", "data": data})

    def _embeddings(self, body: dict[str, Any]) -> None:
        fake = self.server.fake
        model = body["model"]
        texts = _embedding_inputs(body.get("input"))
        if texts is None:
            self._error(400, "'input' must be a string or a non-empty array", param="input")
            return
        if any(text == "" for text in texts):
            self._error(400, "'$.input' is invalid: empty strings are not allowed", param="input")
            return
        requested = body.get("dimensions")
        if requested is not None:
            if model == "text-embedding-ada-002":
                self._error(400, "This model does not support specifying dimensions.")
                return
            if not isinstance(requested, int) or requested < 1:
                self._error(400, "'dimensions' must be a positive integer", param="dimensions")
                return
        dims = requested or MODEL_DIMENSIONS.get(model, fake.default_dimensions)
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            self._error(400, "encoding_format must be 'float' or 'base64'", param="encoding_format")
            return
        data = []
        for index, text in enumerate(texts):
            vec = fake_embedding(text, dims)
            encoded: Any
            if fmt == "base64":
                encoded = base64.b64encode(vec.astype("<f4").tobytes()).decode("ascii")
            else:
                encoded = [float(x) for x in vec]
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(_count_tokens(t) for t in texts)
        self._json(
            200,
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    def _responses(self, body: dict[str, Any]) -> None:
        fake = self.server.fake
        previous = body.get("previous_response_id")
        if previous is not None and not fake._knows_response(str(previous)):
            self._error(
                400,
                f"Previous response with id '{previous}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
            return
        if body.get("temperature") is not None and body.get("reasoning") is not None:
            self._error(
                400, "Unsupported parameter: 'temperature' with reasoning.", param="temperature"
            )
            return
        answer = self._answer(body, _last_user_text_responses(body.get("input")))
        response_id = fake._next_id("resp_")
        fake._remember_response(response_id)
        output: list[dict[str, Any]] = []
        tools = body.get("tools") or []
        if any(
            isinstance(t, dict) and str(t.get("type", "")).startswith("web_search") for t in tools
        ):
            output.append(
                {
                    "type": "web_search_call",
                    "id": fake._next_id("ws_"),
                    "status": "completed",
                    "action": {
                        "type": "search",
                        "query": _last_user_text_responses(body.get("input")),
                    },
                }
            )
        calls = _tool_calls(answer)
        if calls is not None:
            for call in calls:
                output.append(
                    {
                        "type": "function_call",
                        "id": fake._next_id("fc_"),
                        "call_id": call.call_id or fake._next_id("call_"),
                        "name": call.name,
                        "arguments": json.dumps(call.arguments),
                        "status": "completed",
                    }
                )
            answer = json.dumps([c.arguments for c in calls])
        else:
            output.append(
                {
                    "type": "message",
                    "id": fake._next_id("msg_"),
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": answer, "annotations": []}],
                }
            )
        input_tokens = _count_tokens(json.dumps(body.get("input"))) + _count_tokens(
            body.get("instructions") or ""
        )
        output_tokens = _count_tokens(answer)
        self._json(
            200,
            {
                "id": response_id,
                "object": "response",
                "created_at": int(time.time()),
                "status": "completed",
                "error": None,
                "incomplete_details": None,
                "instructions": body.get("instructions"),
                "max_output_tokens": body.get("max_output_tokens"),
                "model": body["model"],
                "output": output,
                "parallel_tool_calls": True,
                "previous_response_id": previous,
                "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
                "store": body.get("store", True),
                "temperature": body.get("temperature", 1.0),
                "text": {"format": {"type": "text"}},
                "tool_choice": "auto",
                "tools": tools,
                "top_p": 1.0,
                "truncation": "disabled",
                "usage": {
                    "input_tokens": input_tokens,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens": output_tokens,
                    "output_tokens_details": {"reasoning_tokens": 0},
                    "total_tokens": input_tokens + output_tokens,
                },
                "metadata": {},
            },
        )

    def _chat_completions(self, body: dict[str, Any]) -> None:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            self._error(400, "'messages' must be a non-empty array", param="messages")
            return
        last_user = ""
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "user":
                last_user = _content_text(message.get("content"))
                break
        answer = self._answer(body, last_user)
        message: dict[str, Any] = {"role": "assistant", "content": answer, "refusal": None}
        finish_reason = "stop"
        calls = _tool_calls(answer)
        if calls is not None:
            message["content"] = None
            message["tool_calls"] = [
                {
                    "id": call.call_id or self.server.fake._next_id("call_"),
                    "type": "function",
                    "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
                }
                for call in calls
            ]
            finish_reason = "tool_calls"
            answer = json.dumps([c.arguments for c in calls])
        prompt_tokens = sum(
            _count_tokens(_content_text(m.get("content"))) for m in messages if isinstance(m, dict)
        )
        completion_tokens = _count_tokens(answer)
        self._json(
            200,
            {
                "id": self.server.fake._next_id("chatcmpl-"),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": message,
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )

    def _answer(self, body: dict[str, Any], last_user: str) -> Any:
        responder = self.server.fake.responder
        if responder is not None:
            return responder(body)
        return f"{ECHO_MARKER} {last_user}"

    # ------------------------------------------------------------------ output
    def _error(
        self,
        status: int,
        message: str | None = None,
        *,
        model: str | None = None,
        retry_after: float | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        err_type, default_code, default_message = _ERROR_BODIES.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, None)
        )
        if message is None:
            message = default_message
        if message is None and status == 404:
            message = (
                f"The model `{model}` does not exist or you do not have access to it."
                if model
                else "Not found."
            )
        body = {
            "error": {
                "message": message or f"HTTP {status}",
                "type": err_type,
                "param": param,
                "code": code or default_code,
            }
        }
        headers = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
        self._json(status, body, headers)

    def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-request-id", f"req_{hashlib.md5(data).hexdigest()[:16]}")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.close_connection = True


def _embedding_inputs(value: Any) -> list[str] | None:
    """Texts from an embeddings ``input``: a string, strings, or token-id arrays."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, str) for v in value):
        return list(value)
    if all(isinstance(v, int) for v in value):
        return [" ".join(f"tok{v}" for v in value)]
    if all(isinstance(v, list) and all(isinstance(i, int) for i in v) for v in value):
        return [" ".join(f"tok{i}" for i in v) for v in value]
    return None


def _tool_calls(answer: Any) -> list[ToolCall] | None:
    """The tool calls a responder asked for, or None for a text answer."""
    if isinstance(answer, ToolCall):
        return [answer]
    if isinstance(answer, list) and answer and all(isinstance(c, ToolCall) for c in answer):
        return list(answer)
    return None


def _content_text(content: Any) -> str:
    """Plain text of a message ``content``: a string or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return " ".join(p for p in parts if isinstance(p, str))
    return ""


def _last_user_text_responses(value: Any) -> str:
    """The last user text of a Responses ``input`` (a string or a list of items)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        for item in reversed(value):
            if isinstance(item, dict) and item.get("role") == "user":
                return _content_text(item.get("content"))
    return ""


def _count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


@contextmanager
def fake_openai(**kwargs: Any) -> Iterator[FakeOpenAI]:
    """``with fake_openai(api_key="sk-test") as server: ...`` (for fixtures)."""
    server = FakeOpenAI(**kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def closed_port_url() -> str:
    """A ``http://127.0.0.1:PORT/v1`` URL where nothing listens (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
