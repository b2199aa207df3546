"""Memory browser: search, a filtered list, edit / delete / history, export and import."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any, TypedDict

from ..errors import SemMemError
from ..types import SOURCES

if TYPE_CHECKING:
    from .client import MemoryClient

__all__ = ["render"]

PAGE_SIZES = (20, 50, 100)


def _flash(state: Any, kind: str, text: str) -> None:
    state["flash"] = (kind, text)


def _delete(client: MemoryClient, state: Any, memory_id: str) -> None:
    state.pop(f"confirm-delete-{memory_id}", None)
    try:
        client.forget(memory_id)
        _flash(state, "success", f"Deleted memory {memory_id[:12]}.")
    except SemMemError as exc:
        _flash(state, "error", f"Could not delete {memory_id[:12]}: {exc}")


def _ask_delete(state: Any, memory_id: str, ask: bool) -> None:
    if ask:
        state[f"confirm-delete-{memory_id}"] = True
    else:
        state.pop(f"confirm-delete-{memory_id}", None)


def _save_edit(client: MemoryClient, state: Any, memory: dict[str, Any]) -> None:
    memory_id = memory["id"]
    text = state.get(f"edit-text-{memory_id}", "")
    raw_meta = state.get(f"edit-meta-{memory_id}", "")
    try:
        metadata = json.loads(raw_meta) if raw_meta.strip() else None
    except ValueError as exc:
        _flash(state, "error", f"Metadata is not valid JSON: {exc}")
        return
    if metadata is not None and not isinstance(metadata, dict):
        _flash(state, "error", "Metadata must be a JSON object.")
        return
    # only what changed is sent: saving an unchanged memory adds no history event
    new_text = text if text != memory["text"] else None
    new_meta = metadata if (metadata or {}) != (memory.get("metadata") or {}) else None
    if new_text is None and new_meta is None:
        _flash(state, "info", f"No changes to memory {memory_id[:12]}.")
        return
    try:
        client.update(memory_id, text=new_text, metadata=new_meta)
        _flash(state, "success", f"Saved memory {memory_id[:12]} (old version kept in history).")
    except SemMemError as exc:
        _flash(state, "error", f"Could not save {memory_id[:12]}: {exc}")


def _memory_card(
    client: MemoryClient, state: Any, m: dict[str, Any], extra: str = "", prefix: str = ""
) -> None:
    import streamlit as st

    created = str(m.get("timestamp") or m.get("created_at", ""))[:19].replace("T", " ")
    short = f"{m['text'][:90]}{'…' if len(m['text']) > 90 else ''}"
    label = f"{prefix}{short} · {m['source']} · {created}"
    with st.expander(label):
        if extra:
            st.caption(extra)
        st.caption(f"id `{m['id']}`")
        st.text_area("Text", m["text"], key=f"edit-text-{m['id']}", height=100)
        st.text_area(
            "Metadata (JSON)",
            json.dumps(m.get("metadata") or {}, ensure_ascii=False),
            key=f"edit-meta-{m['id']}",
            height=68,
        )
        c1, c2, c3 = st.columns(3)
        c1.button("Save", key=f"save-{m['id']}", on_click=_save_edit, args=(client, state, m))
        if state.get(f"confirm-delete-{m['id']}"):
            c2.warning("Delete this memory for good?")
            c2.button(
                "Yes, delete",
                key=f"confirm-{m['id']}",
                on_click=_delete,
                args=(client, state, m["id"]),
            )
            c2.button(
                "Cancel",
                key=f"cancel-{m['id']}",
                on_click=_ask_delete,
                args=(state, m["id"], False),
            )
        else:
            c2.button(
                "🗑️ Delete",
                key=f"delete-{m['id']}",
                on_click=_ask_delete,
                args=(state, m["id"], True),
            )
        if c3.toggle("History", key=f"history-{m['id']}"):
            try:
                events = client.history(m["id"])
            except SemMemError as exc:
                st.error(str(exc))
                events = []
            for event in events:
                when = str(event.get("at", ""))[:19].replace("T", " ")
                text = (event.get("text") or "").strip()
                detail = f" ({event['detail']})" if event.get("detail") else ""
                line = f"{event['event']} {when}{detail}" + (f": {text[:200]}" if text else "")
                st.text(line)  # plain text: stored text is data, not Markdown


def _export_import(client: MemoryClient, state: Any) -> None:
    import streamlit as st

    with st.expander("⇅ Export / import (JSON Lines)"):
        if st.button("Prepare export", key="prepare_export"):
            try:
                state["export_data"] = b"".join(client.export_jsonl())
            except SemMemError as exc:
                st.error(f"Export failed: {exc}")
        data = state.get("export_data")
        if data is not None:
            st.download_button(
                f"Download export ({len(data):,} bytes)",
                data,
                file_name="sem-mem-export.jsonl",
                mime="application/x-ndjson",
                key="download_export",
            )
        upload = st.file_uploader("Import a .jsonl export", type=["jsonl"], key="import_file")
        if upload is not None and st.button("Import", key="import_button"):
            try:
                report = client.import_jsonl(upload.getvalue())
                st.success(
                    f"Imported {report['imported']} memories "
                    f"({report['skipped_existing']} already present, "
                    f"{report['reembedded']} re-embedded)."
                )
            except SemMemError as exc:
                st.error(f"Import failed: {exc}")


def render(client: MemoryClient, state: Any) -> None:
    """Draw the browser page."""
    import streamlit as st

    st.subheader("🗂️ Memories")
    flash = state.pop("flash", None)
    if flash is not None:
        getattr(st, flash[0])(flash[1])
    query = st.text_input("Search", key="browser_query", placeholder="semantic + full-text search")
    c1, c2, c3, c4, c5 = st.columns(5)
    source = c1.selectbox("Source", ["all", *SOURCES], key="browser_source")
    since = c2.date_input("Happened from", value=None, key="browser_since")
    until = c3.date_input("Happened until", value=None, key="browser_until")
    size = c4.selectbox("Per page", PAGE_SIZES, key="browser_page_size")
    rerank = c5.toggle(
        "Rerank",
        key="browser_rerank",
        help="A cross-encoder reorders the best 25 results: better order, ~0.25 s slower",
    )
    filters = _Filters(
        source=None if source == "all" else source,
        since=_day_start(since),
        until=_day_start(until, next_day=True),
    )
    if query.strip():
        try:
            # off: as the memory is configured (SEMMEM_RERANKER), not "never"
            results = client.recall(query, limit=size, rerank=rerank or None, **filters)
        except SemMemError as exc:
            st.error(str(exc))
            results = []
        reranked = ", reranked by the cross-encoder" if rerank else ""
        st.caption(f"{len(results)} result(s), most relevant first{reranked}.")
        for rank, r in enumerate(results, start=1):
            _memory_card(
                client,
                state,
                r,
                prefix=f"#{rank} · score {r['score']:.3f} · ",
                extra=f"{r['tier']} · score {r['score']:.3f} · similarity {r['similarity']:.3f}",
            )
    else:
        page = int(st.number_input("Page", min_value=1, value=1, key="browser_page"))
        try:
            memories = client.list_memories(limit=size, offset=(page - 1) * size, **filters)
        except SemMemError as exc:
            st.error(str(exc))
            memories = []
        total = client.stats().get("total_memories", 0)
        st.caption(f"{len(memories)} shown on page {page} · {total:,} memories in the store.")
        for m in memories:
            _memory_card(client, state, m)
    _export_import(client, state)


class _Filters(TypedDict):
    source: str | None
    since: dt.datetime | None
    until: dt.datetime | None


def _day_start(day: Any, *, next_day: bool = False) -> dt.datetime | None:
    """Local midnight of ``day`` (of the day after, for an inclusive "until")."""
    if not isinstance(day, dt.date):
        return None
    if next_day:
        day = day + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time()).astimezone()
