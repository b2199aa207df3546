"""The small interface the UI talks to, with an in-process and an HTTP implementation.

:class:`MemoryClient` lists every operation the Streamlit app needs, with plain,
JSON-shaped results (the API server's response shapes), so the app has one code path:

* :class:`LocalClient` wraps a :class:`~sem_mem.SemanticMemory` in this process (the
  standalone app). :func:`local_session_factory` gives each browser session its own
  ``SemanticMemory`` over one shared backend and embedder: L2 shared, L1 per session,
  as the seed's "Multi-Session Behavior" says.
* :class:`HttpClient` talks to the API server (``sem_mem.server``) with httpx; L1 and L2
  live in the server and are shared by every client.

Nothing here imports Streamlit.
"""

from __future__ import annotations

from .http_client import HttpClient
from .interface import CHAT_APIS as CHAT_APIS  # the app's choices of chat API
from .interface import ApiError, ChatReply, MemoryClient, ModelInfo
from .interface import Progress as Progress
from .interface import new_thread_title as new_thread_title  # the chat view's session ids
from .local_client import LocalClient, local_session_factory, session_memory

__all__ = [
    "ApiError",
    "ChatReply",
    "HttpClient",
    "LocalClient",
    "MemoryClient",
    "ModelInfo",
    "local_session_factory",
    "session_memory",
]
