"""The Sem-Mem Streamlit app: chat with memory, a memory browser and the Memory Atlas.

One app, one code path, over :class:`~sem_mem.ui.client.MemoryClient`:

* ``run(client_factory)`` draws the app; the factory is called once per browser
  session and its client kept in ``st.session_state``.
* ``main()`` chooses the factory: with ``SEMMEM_API_URL`` (or ``api_url=``) an
  :class:`~sem_mem.ui.client.HttpClient` of the API server, otherwise a per-session
  :class:`~sem_mem.ui.client.LocalClient` over one shared store per storage dir
  (``st.cache_resource``): L2 shared by all sessions, L1 per session.

``streamlit run app.py`` / ``streamlit run app_api.py`` (thin files at the repo root),
``sem-mem ui`` and ``python -m sem_mem.ui.launch`` all end up in :func:`main`; running
this file itself with ``streamlit run`` does too. Tests call :func:`run` with a factory
of their own (an in-process memory with a test embedder).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import streamlit as st

from sem_mem.errors import SemMemError
from sem_mem.llm.base import is_reasoning_model
from sem_mem.ui import atlas_view, browser_view, chat_view
from sem_mem.ui.client import (
    CHAT_APIS,
    HttpClient,
    MemoryClient,
    ModelInfo,
    local_session_factory,
)

if TYPE_CHECKING:
    from sem_mem.core import SemanticMemory

__all__ = ["VIEWS", "default_client_factory", "main", "run"]

VIEWS = ("💬 Chat", "🗂️ Memories", "🗺️ Atlas")
MODEL_CHOICES = ("gpt-5.1", "gpt-4.1", "gpt-4o", "o3", "o1")
EFFORTS = ("low", "medium", "high")
_CLIENT_KEY = "semmem_client"


@st.cache_resource(show_spinner="Opening the memory store…")
def _shared_memory(storage_dir: str, namespace: str) -> SemanticMemory:
    """One memory (backend + embedder) per storage dir and namespace, shared by sessions."""
    from sem_mem.core import SemanticMemory

    return SemanticMemory(storage_dir, namespace=namespace)


def default_client_factory(
    api_url: str | None = None, *, fallback_api_url: str | None = None
) -> Callable[[], MemoryClient]:
    """The client the app uses when none is given.

    ``api_url``, else ``SEMMEM_API_URL`` (environment, ``.env``, Streamlit secrets), else
    ``fallback_api_url`` selects the API server, with ``SEMMEM_API_KEY`` as its bearer
    key; with none of them, the in-process store from the usual settings
    (``MEMORY_STORAGE_DIR``, ``SEMMEM_NAMESPACE``).
    """
    from sem_mem.config import resolve_settings

    settings = resolve_settings()
    url = api_url or settings.api_url or fallback_api_url
    if url:
        key = os.environ.get("SEMMEM_API_KEY") or None
        return lambda: HttpClient(url, api_key=key)
    storage_dir, namespace = settings.storage_dir, settings.namespace
    return local_session_factory(lambda: _shared_memory(storage_dir, namespace))


def _session_client(factory: Callable[[], MemoryClient]) -> MemoryClient:
    client = st.session_state.get(_CLIENT_KEY)
    if client is None:
        client = factory()
        st.session_state[_CLIENT_KEY] = client
    return client  # type: ignore[no-any-return]


def _init_state(state: Any) -> None:
    if "messages" not in state:
        chat_view.reset_thread(state)
    state.setdefault("instructions_version", 0)


def _model_info(client: MemoryClient, state: Any) -> ModelInfo:
    info = state.get("model_info")
    if info is None:
        info = client.model_info()
        state["model_info"] = info
    return info  # type: ignore[no-any-return]


def _chat_options(state: Any, info: ModelInfo) -> chat_view.ChatOptions:
    """The sidebar's choices, read from session state (the sidebar is drawn after the page)."""
    model = state.get("model_choice") or info.model or None
    reasoning = bool(model) and is_reasoning_model(model or "")
    return chat_view.ChatOptions(
        model=model,
        reasoning_effort=state.get("reasoning_effort", info.reasoning_effort)
        if reasoning
        else None,
        temperature=state.get("temperature")
        if not reasoning and info.supports_temperature
        else None,
        web_search=bool(state.get("web_search", False)) and not info.web_search_unavailable,
        auto_remember=bool(state.get("auto_remember", True)),
    )


def _switch_chat_api(client: MemoryClient, state: Any) -> None:
    try:
        client.set_chat_api(state.get("chat_api_choice", "auto"))
    except SemMemError as exc:
        state["chat_api_notice"] = str(exc)
    state.pop("model_info", None)  # read again: the wire format and web search changed


def _save_instructions(client: MemoryClient, state: Any, key: str) -> None:
    try:
        client.set_instructions(state.get(key, ""))
        state["instructions_notice"] = ("success", "Instructions saved.")
    except SemMemError as exc:
        state["instructions_notice"] = ("error", f"Could not save: {exc}")
    state["instructions_version"] = state.get("instructions_version", 0) + 1


def _sidebar_model(client: MemoryClient, info: ModelInfo) -> None:
    st.markdown("#### Model")
    if not info.chat_enabled:
        st.caption("Memory-only mode: no chat model configured.")
    choices = list(dict.fromkeys([info.model, *MODEL_CHOICES]))
    model = st.selectbox(
        "Chat model",
        [c for c in choices if c],
        key="model_choice",
        disabled=not info.chat_enabled,
        accept_new_options=True,
        help="Any model name your provider knows; reasoning models take an effort level.",
    )
    if model and is_reasoning_model(model):
        efforts = list(EFFORTS)
        default = info.reasoning_effort if info.reasoning_effort in efforts else "low"
        st.selectbox(
            "Reasoning effort",
            efforts,
            index=efforts.index(default),
            key="reasoning_effort",
            disabled=not info.chat_enabled,
        )
    else:
        st.slider(
            "Temperature",
            0.0,
            2.0,
            0.7,
            0.1,
            key="temperature",
            disabled=not (info.chat_enabled and info.supports_temperature),
            help=None
            if info.supports_temperature
            else "The API server uses its configured temperature.",
        )
    if info.chat_enabled:
        apis = list(CHAT_APIS)
        st.selectbox(
            "Chat API",
            apis,
            index=apis.index(info.chat_api) if info.chat_api in apis else 0,
            key="chat_api_choice",
            on_change=_switch_chat_api,
            args=(client, st.session_state),
            disabled=not info.can_switch_chat_api,
            help=f"In use: {info.chat_api}. auto: the Responses API with OpenAI, Chat "
            "Completions with any other base URL"
            + ("" if info.can_switch_chat_api else " (set CHAT_API on the API server)"),
        )
        notice = st.session_state.pop("chat_api_notice", None)
        if notice:
            st.error(notice)
    st.toggle(
        "🌐 Web Search",
        value=False,
        key="web_search",
        disabled=bool(info.web_search_unavailable),
        help=f"Unavailable: {info.web_search_unavailable}" if info.web_search_unavailable else None,
    )
    if info.web_search_unavailable and info.chat_enabled:
        st.caption(f"Web search is off: {info.web_search_unavailable}.")
    st.toggle("🧠 Auto-memory", value=True, key="auto_remember")


def _sidebar_instructions(client: MemoryClient, state: Any) -> None:
    with st.expander("📌 Instructions"):
        key = f"instructions_editor_{state['instructions_version']}"
        try:
            current = client.instructions()
        except SemMemError as exc:
            st.error(str(exc))
            return
        st.text_area("Persistent instructions", current, key=key, height=140)
        st.button(
            "Save instructions",
            key="save_instructions",
            on_click=_save_instructions,
            args=(client, state, key),
        )
        notice = state.pop("instructions_notice", None)
        if notice is not None:
            getattr(st, notice[0])(notice[1])


def _sidebar_upload(client: MemoryClient) -> None:
    with st.expander("📄 Add a document (PDF, text, Markdown)"):
        upload = st.file_uploader("Document", type=["pdf", "txt", "md"], key="doc_upload")
        if upload is None or not st.button("Ingest", key="ingest_button"):
            return
        bar = st.progress(0.0, text=f"Reading {upload.name}…")

        def progress(done: int, total: int) -> None:
            bar.progress(min(done / max(total, 1), 1.0), text=f"{done}/{total} chunks")

        try:
            result = client.ingest(upload.getvalue(), upload.name, progress)
        except SemMemError as exc:
            bar.empty()
            st.error(f"Could not ingest {upload.name}: {exc}")
            return
        bar.progress(1.0, text="Done")
        if result.get("already_ingested"):
            st.info(f"{result['filename']}: already ingested, nothing new stored.")
        else:
            st.success(
                f"{result['filename']}: {result['pages']} page(s), "
                f"{result['chunks_stored']} of {result['chunks_created']} chunks stored."
            )
        if result.get("note") and not result.get("already_ingested"):
            st.caption(result["note"])


def _sidebar_cache_and_stats(client: MemoryClient) -> None:
    with st.expander("⚡ L1 cache"):
        try:
            cache = client.cache_state()
        except SemMemError as exc:
            st.error(str(exc))
            cache = {}
        for tier in ("protected", "probation"):
            entries = cache.get(tier, [])
            st.markdown(f"**{tier.capitalize()}** ({len(entries)})")
            for entry in entries:
                # plain text: a memory is data, not Markdown to render
                st.text(f"{entry['hit_count']} hits · {entry['text'][:80]}")
    with st.expander("📊 Statistics"):
        try:
            stats = client.stats()
        except SemMemError as exc:
            st.error(str(exc))
            return
        l1 = stats.get("l1", {})
        c1, c2 = st.columns(2)
        c1.metric("Memories", f"{stats.get('total_memories', 0):,}")
        c2.metric("L1 size", f"{l1.get('size', 0)}/{l1.get('capacity', '?')}")
        by_source = stats.get("by_source") or {}
        if by_source:
            st.caption(" · ".join(f"{k}: {v:,}" for k, v in sorted(by_source.items())))
        embedder = stats.get("embedder") or {}
        st.caption(
            f"Embedder {embedder.get('model_id', '?')} ({embedder.get('dimensions', '?')} dims)"
        )
        st.json(stats, expanded=False)


def run(client_factory: Callable[[], MemoryClient] | None = None) -> None:
    """Draw the app. ``client_factory`` is called once per browser session."""
    st.set_page_config(page_title="Sem-Mem", page_icon="🧠", layout="wide")
    state = st.session_state
    try:
        client = _session_client(client_factory or default_client_factory())
        info = _model_info(client, state)
    except SemMemError as exc:
        st.error(f"Sem-Mem cannot start: {exc}")
        return
    _init_state(state)
    view = state.get("view", VIEWS[0])
    if view == VIEWS[1]:
        browser_view.render(client, state)
    elif view == VIEWS[2]:
        atlas_view.render(client)
    else:
        chat_view.render(client, state, _chat_options(state, info), info.chat_enabled, info.reason)
    # drawn after the page so it shows what the page just changed (instructions, L1, stats)
    with st.sidebar:
        st.title("🧠 Sem-Mem")
        st.radio("View", VIEWS, key="view", label_visibility="collapsed")
        st.caption(client.describe())
        _sidebar_model(client, info)
        _sidebar_instructions(client, state)
        _sidebar_upload(client)
        _sidebar_cache_and_stats(client)


def main(api_url: str | None = None, *, fallback_api_url: str | None = None) -> None:
    """Entry point of ``streamlit run``: pick the client from the configuration, then run.

    ``app_api.py`` passes ``fallback_api_url="http://localhost:8000"``, so it is always
    an API client; ``app.py`` passes nothing and is standalone unless ``SEMMEM_API_URL``
    is set.
    """
    run(default_client_factory(api_url, fallback_api_url=fallback_api_url))


if __name__ == "__main__":  # `streamlit run sem_mem/ui/app.py` (what `sem-mem ui` does)
    main()
