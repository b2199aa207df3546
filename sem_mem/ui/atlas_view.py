"""Memory Atlas view: the 2D PCA projection as an interactive Plotly scatter.

:func:`atlas_figure` builds the figure from an :class:`~sem_mem.atlas.Atlas` (no
Streamlit; ``bench/atlas_render.py`` times it); :func:`render` draws the page. Above
``WEBGL_ABOVE`` points the scatter uses WebGL (``Scattergl``) so 10^4 memories stay
responsive; the atlas itself is capped at a deterministic sample (``max points``),
and the page says so.
"""

from __future__ import annotations

import html
import textwrap
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atlas import DEFAULT_MAX_POINTS, Atlas

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from .client import MemoryClient

__all__ = ["WEBGL_ABOVE", "atlas_figure", "hover_text", "render"]

#: above this many points the scatter is drawn with WebGL
WEBGL_ABOVE = 1_500
_PALETTE = (
    "#4C78A8",
    "#F58518",
    "#54A24B",
    "#B279A2",
    "#E45756",
    "#72B7B2",
    "#EECA3B",
    "#FF9DA6",
    "#9D755D",
    "#BAB0AC",
)


def hover_text(text: str, source: str, memory_id: str, *, width: int = 70, limit: int = 320) -> str:
    """Hover label: the memory's text (HTML-escaped, wrapped, shortened), source and id."""
    short = text if len(text) <= limit else text[: limit - 1] + "…"
    lines = textwrap.wrap(html.escape(short), width) or [""]
    return "<br>".join(lines) + f"<br><i>{html.escape(source)} · {memory_id[:12]}</i>"


def atlas_figure(
    atlas: Atlas,
    *,
    color_by: str = "source",
    query_xy: tuple[float, float] | None = None,
    neighbour_ids: Iterable[str] = (),
    height: int = 640,
) -> go.Figure:
    """The atlas as a Plotly figure: one trace per source (or cluster), neighbours ringed.

    ``color_by`` is ``"source"`` or ``"cluster"`` (falls back to source when the atlas
    has no clusters). ``query_xy`` adds a star for the query; ``neighbour_ids`` rings
    the query's nearest memories.
    """
    import plotly.graph_objects as go

    scatter = go.Scattergl if len(atlas) > WEBGL_ABOVE else go.Scatter
    hovers = [
        hover_text(t, s, i) for t, s, i in zip(atlas.texts, atlas.sources, atlas.ids, strict=True)
    ]
    if color_by == "cluster" and atlas.clusters is not None:
        labels = [f"cluster {int(c) + 1}" for c in atlas.clusters]
    else:
        labels = list(atlas.sources)
    groups: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        groups.setdefault(label, []).append(index)
    fig = go.Figure()
    for n, (label, rows) in enumerate(sorted(groups.items())):
        idx = np.asarray(rows)
        fig.add_trace(
            scatter(
                x=atlas.xy[idx, 0],
                y=atlas.xy[idx, 1],
                mode="markers",
                name=f"{label} ({len(rows)})",
                text=[hovers[i] for i in rows],
                hovertemplate="%{text}<extra></extra>",
                marker={"size": 7, "opacity": 0.75, "color": _PALETTE[n % len(_PALETTE)]},
            )
        )
    near = [p for p in (atlas.position(i) for i in neighbour_ids) if p is not None]
    if near:
        fig.add_trace(
            scatter(
                x=[p[0] for p in near],
                y=[p[1] for p in near],
                mode="markers",
                name="query neighbours",
                hoverinfo="skip",
                marker={
                    "size": 16,
                    "color": "rgba(0,0,0,0)",
                    "line": {"width": 2.5, "color": "red"},
                },
            )
        )
    if query_xy is not None:
        fig.add_trace(
            scatter(
                x=[query_xy[0]],
                y=[query_xy[1]],
                mode="markers",
                name="query",
                hovertemplate="query<extra></extra>",
                marker={"size": 18, "symbol": "star", "color": "red"},
            )
        )
    ex, ey = atlas.explained
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"orientation": "h", "y": -0.08},
        xaxis_title=f"PC1 ({ex:.0%} of variance)",
        yaxis_title=f"PC2 ({ey:.0%} of variance)",
        hovermode="closest",
    )
    return fig


def _neighbours(client: MemoryClient, query: str, k: int) -> list[dict[str, Any]]:
    return client.recall(query, limit=k) if query.strip() else []


def _query_position(
    client: MemoryClient, atlas: Atlas, query: str, neighbours: Sequence[dict[str, Any]]
) -> tuple[float, float] | None:
    vector = client.query_vector(query) if query.strip() else None
    if vector is not None and vector.shape[0] == atlas.mean.shape[0]:
        return atlas.project(vector)
    return atlas.place_by_neighbours((n["id"], n["similarity"]) for n in neighbours)


def render(client: MemoryClient) -> None:
    """Draw the atlas page: controls, sampling note, the scatter and the query's neighbours."""
    import streamlit as st

    st.subheader("🗺️ Memory Atlas")
    c1, c2, c3 = st.columns([2, 1, 1])
    query = c1.text_input(
        "Highlight the neighbours of", key="atlas_query", placeholder="a question…"
    )
    color_by = c2.radio("Colour by", ["source", "cluster"], key="atlas_color", horizontal=True)
    k = int(c3.number_input("Clusters", 2, 20, 6, key="atlas_k"))
    max_points = int(
        st.session_state.get("atlas_max_points", DEFAULT_MAX_POINTS) or DEFAULT_MAX_POINTS
    )
    stats = client.stats()
    key = (stats.get("total_memories"), stats.get("seq"), max_points, k)
    cached = st.session_state.get("atlas_cache")
    if cached is None or cached[0] != key:
        started = time.perf_counter()
        with st.spinner("Projecting memories…"):
            atlas = client.atlas(max_points=max_points, clusters=k)
        cached = (key, atlas, time.perf_counter() - started)
        st.session_state["atlas_cache"] = cached
    _, atlas, seconds = cached
    if atlas is None:
        st.info("No memories yet: add some with `remember:` in the chat or upload a document.")
        return
    if atlas.sampled:
        st.warning(
            f"Showing a deterministic sample of {atlas.shown:,} of {atlas.total:,} memories "
            f"(cap: {atlas.max_points:,} points, so the page stays responsive). "
            "The sample is stable: the same memories are shown every time."
        )
    else:
        st.caption(f"Showing all {atlas.total:,} memories.")
    neighbours = _neighbours(client, query, 10)
    started = time.perf_counter()
    fig = atlas_figure(
        atlas,
        color_by=color_by,
        query_xy=_query_position(client, atlas, query, neighbours),
        neighbour_ids=[n["id"] for n in neighbours],
    )
    st.plotly_chart(fig, key="atlas_chart", config={"displaylogo": False})
    ex, ey = atlas.explained
    st.caption(
        f"PCA of {atlas.mean.shape[0]}-dimensional embeddings: the two axes carry "
        f"{ex + ey:.0%} of the variance. Projection {seconds * 1000:.0f} ms, "
        f"figure {(time.perf_counter() - started) * 1000:.0f} ms."
    )
    st.number_input(
        "Max points",
        min_value=100,
        max_value=50_000,
        value=DEFAULT_MAX_POINTS,
        step=500,
        key="atlas_max_points",
        help="Above this many memories the atlas shows a deterministic sample.",
    )
    if neighbours:
        missing = [n for n in neighbours if atlas.position(n["id"]) is None]
        st.markdown("**Nearest memories to the query**")
        for n in neighbours:
            st.markdown(f"- `{n['tier']}` {n['score']:.2f} · {n['text'][:160]}")
        if missing:
            st.caption(f"{len(missing)} of them are outside the sample shown.")
