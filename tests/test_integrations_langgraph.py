"""SemMemStore against the real LangGraph package: BaseStore semantics, LangGraph's own
in-memory store as the reference, persistence across processes, namespace scoping, and
the store under a LangGraph agent with LangMem's memory tools."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_python
from embedders import HashingEmbedder
from hypothesis import given
from hypothesis import strategies as st

pytest.importorskip("langgraph.store.base")

from langgraph.store.base import GetOp, InvalidNamespaceError, PutOp, SearchItem
from langgraph.store.memory import InMemoryStore

from sem_mem import SemanticMemory
from sem_mem.errors import ConfigurationError, LimitExceededError, ValidationError
from sem_mem.integrations._common import companion, decode, derived
from sem_mem.integrations.langgraph import KEY_FIELD, SemMemStore


@pytest.fixture
def make_store(tmp_path: Path) -> Iterator[Callable[..., SemMemStore]]:
    opened: list[SemMemStore] = []

    def make(**kwargs: Any) -> SemMemStore:
        kwargs.setdefault("storage_dir", str(tmp_path / "store"))
        kwargs.setdefault("embedder", HashingEmbedder())
        store = SemMemStore(**kwargs)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.fixture
def store(make_store: Callable[..., SemMemStore]) -> SemMemStore:
    return make_store()


# -- namespace names --------------------------------------------------------------------------

labels = st.text(alphabet=st.sampled_from("ab./%#2F5"), max_size=4)
paths = st.lists(labels, max_size=4).map(tuple)


@given(st.tuples(labels, paths), st.tuples(labels, paths))
def test_namespace_names_never_collide(first: Any, second: Any) -> None:
    """Two different (root, namespace) pairs never share a Sem-Mem namespace, and no
    derived name equals a companion name (the OpenAI Agents session log)."""
    (root1, path1), (root2, path2) = first, second
    if (root1, path1) != (root2, path2):
        assert derived(root1, path1) != derived(root2, path2)
    if path1:  # (the store refuses the empty namespace: it would be the root itself)
        assert decode(root1, derived(root1, path1)) == path1
    assert derived(root1, path1) != companion(root2, "agents-session-items")


def test_look_alike_namespaces_are_separate(store: SemMemStore) -> None:
    # "." is refused by LangGraph itself; "/", "%" and "#" are legal labels
    look_alikes = [("a", "b"), ("a/b",), ("a%2Fb",), ("a#b",), ("a%b",), ("a", "b/")]
    for i, ns in enumerate(look_alikes):
        store.put(ns, "k", {"text": f"value {i}"})
    for i, ns in enumerate(look_alikes):
        item = store.get(ns, "k")
        assert item is not None and item.value == {"text": f"value {i}"}
        assert [x.value for x in store.search(ns) if x.namespace == ns] == [item.value]
    assert set(store.list_namespaces()) == set(look_alikes)
    with pytest.raises(InvalidNamespaceError):
        store.batch([PutOp(("a.b",), "k", {"x": 1})])  # ops sent to batch are checked too
    with pytest.raises(InvalidNamespaceError):
        store.batch([GetOp((), "k")])


def test_too_long_a_namespace_is_refused_by_name(store: SemMemStore) -> None:
    with pytest.raises(LimitExceededError, match="limit is 128"):
        store.put(("x" * 200,), "k", {"a": 1})


# -- items ----------------------------------------------------------------------------------


def test_put_get_replace_delete(store: SemMemStore) -> None:
    assert store.get(("users", "alice"), "diet") is None
    store.put(("users", "alice"), "diet", {"text": "Alice is vegetarian", "level": 3})
    first = store.get(("users", "alice"), "diet")
    assert first is not None
    assert (first.namespace, first.key) == (("users", "alice"), "diet")
    assert first.value == {"text": "Alice is vegetarian", "level": 3}
    assert first.created_at == first.updated_at

    store.put(("users", "alice"), "diet", {"text": "Alice is vegan"})
    second = store.get(("users", "alice"), "diet")
    assert second is not None and second.value == {"text": "Alice is vegan"}
    assert second.created_at == first.created_at < second.updated_at
    assert len(store.search(("users", "alice"))) == 1  # replaced, not added

    store.delete(("users", "alice"), "diet")
    assert store.get(("users", "alice"), "diet") is None
    assert store.list_namespaces() == []


def test_values_round_trip_and_bad_values_are_refused(store: SemMemStore) -> None:
    value = {"n": 1, "x": 1.5, "ok": True, "none": None, "list": [1, "a"], "d": {"k": [2]}}
    store.put(("t",), "k", value)
    item = store.get(("t",), "k")
    assert item is not None and item.value == value
    with pytest.raises(ValidationError, match="reserved field"):
        store.put(("t",), "k", {KEY_FIELD: "x"})
    with pytest.raises(ValidationError, match="JSON"):
        store.put(("t",), "k", {"when": object()})
    assert store.get(("t",), "k") == item  # nothing stored is lost


def test_the_index_config_names_the_searchable_text(
    make_store: Callable[..., SemMemStore], tmp_path: Path
) -> None:
    store = make_store(index={"fields": ["memory", "tags[*]"]})
    store.put(("u",), "a", {"memory": "likes tea", "tags": ["drinks", "mornings"], "x": "zzz"})
    store.put(("u",), "b", {"memory": "reads novels"}, index=["memory"])
    store.put(("u",), "c", {"memory": "secret"}, index=False)
    engine = SemanticMemory(
        str(tmp_path / "store"),
        namespace=store.sem_mem_namespace(("u",)),
        embedder=HashingEmbedder(),
    )
    try:
        texts = {m.metadata[KEY_FIELD]: m.text for m in engine.list()}
    finally:
        engine.close()
    assert texts["a"] == "likes tea\ndrinks\nmornings"
    assert texts["b"] == "reads novels"
    # unindexed items come after every scored one, without a score, as in LangGraph
    hits = store.search(("u",), query="secret", limit=3)
    assert [h.key for h in hits][-1] == "c" and hits[-1].score is None
    assert all(h.score is not None for h in hits[:-1])


def test_index_config_refuses_what_it_cannot_honour(make_store: Callable[..., Any]) -> None:
    with pytest.raises(ConfigurationError, match="embedder"):
        make_store(index={"dims": 64, "embed": "openai:text-embedding-3-small"})
    with pytest.raises(ConfigurationError, match="64 dimensions"):
        make_store(index={"dims": 1536})
    make_store(index={"dims": 64, "fields": ["text"]})  # the embedder's own size is fine


# -- search ---------------------------------------------------------------------------------


def test_search_is_hybrid_recall_with_scores(store: SemMemStore) -> None:
    store.put(("docs",), "py", {"text": "Python tutorial for beginners"})
    store.put(("docs",), "ts", {"text": "TypeScript guide"})
    store.put(("docs",), "cook", {"text": "Cooking pasta at home"})
    hits = store.search(("docs",), query="python tutorial", limit=2)
    assert all(isinstance(h, SearchItem) for h in hits)
    assert hits[0].key == "py" and hits[0].score is not None
    assert len(hits) == 2 and hits[0].score >= hits[1].score  # type: ignore[operator]
    assert [h.key for h in store.search(("docs",), query="python", limit=1, offset=1)] == [
        hits[1].key
    ]


def test_a_filter_finds_its_item_however_many_others_are_closer(store: SemMemStore) -> None:
    ops = [
        PutOp(("notes",), f"n{i}", {"text": f"pizza recipe number {i}", "kind": "noise"})
        for i in range(300)
    ]
    store.batch(ops)
    store.put(("notes",), "needle", {"text": "tax forms are due", "kind": "needle"})
    hits = store.search(("notes",), query="pizza recipe", filter={"kind": "needle"}, limit=1)
    assert [h.key for h in hits] == ["needle"]
    hits = store.search(
        ("notes",), query="pizza recipe", filter={"kind": {"$eq": "needle"}}, limit=5
    )
    assert [h.key for h in hits] == ["needle"]


def test_filters_behave_like_langgraphs_own_store(store: SemMemStore) -> None:
    """The same puts and filtered listings on InMemoryStore (the reference LangGraph
    ships) and on SemMemStore return the same items."""
    reference = InMemoryStore()
    values = [
        {"text": "a", "score": 1, "color": "red", "meta": {"lang": "en", "v": 2}},
        {"text": "b", "score": 5, "color": "blue", "meta": {"lang": "fr", "v": 2}},
        {"text": "c", "score": 3.5, "color": "red", "tags": ["x", "y"]},
        {"text": "d", "score": 7, "color": None, "flag": True},
        {"text": "e", "score": "9", "flag": 1},
    ]
    for target in (reference, store):
        for i, value in enumerate(values):
            target.put(("items", "a" if i % 2 else "b"), f"k{i}", value)
    filters: list[dict[str, Any]] = [
        {},
        {"color": "red"},
        {"color": None},
        {"score": {"$gt": 3}},
        {"score": {"$gte": 3.5, "$lt": 7}},
        {"score": {"$ne": 5}},
        {"color": {"$ne": "red"}},
        {"meta": {"lang": "en"}},
        {"tags": ["x", "y"]},
        {"flag": True},
        {"color": "red", "score": {"$lte": 1}},
        {"missing": "x"},
    ]
    for condition in filters:
        for prefix in [("items",), ("items", "a"), ("items", "b"), ("other",)]:
            want = {i.key for i in reference.search(prefix, filter=condition, limit=50)}
            got = {i.key for i in store.search(prefix, filter=condition, limit=50)}
            assert got == want, (condition, prefix)


def test_list_namespaces_behaves_like_langgraphs_own_store(store: SemMemStore) -> None:
    reference = InMemoryStore()
    spaces = [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
        ("users", "123"),
        ("users", "456", "settings"),
    ]
    for target in (reference, store):
        for ns in spaces:
            target.put(ns, "k", {"v": 1})
    queries: list[dict[str, Any]] = [
        {},
        {"prefix": ("a", "b")},
        {"prefix": ("a", "b"), "max_depth": 3},
        {"suffix": ("f",)},
        {"prefix": ("a", "*"), "suffix": ("f",)},
        {"prefix": ("*", "b")},
        {"max_depth": 1},
        {"limit": 2, "offset": 1},
        {"prefix": ("nope",)},
    ]
    for query in queries:
        assert sorted(store.list_namespaces(**query)) == sorted(
            reference.list_namespaces(**query)
        ), query


def test_async_twins(store: SemMemStore) -> None:
    async def scenario() -> None:
        await store.aput(("a",), "k", {"text": "hello async world"})
        item = await store.aget(("a",), "k")
        assert item is not None and item.value == {"text": "hello async world"}
        hits = await store.asearch(("a",), query="async")
        assert [h.key for h in hits] == ["k"]
        assert await store.alist_namespaces() == [("a",)]
        await store.adelete(("a",), "k")
        assert await store.aget(("a",), "k") is None

    asyncio.run(scenario())


# -- persistence and scope -------------------------------------------------------------------


def test_items_persist_across_processes(store: SemMemStore, tmp_path: Path) -> None:
    store.put(("users", "alice"), "diet", {"text": "Alice is vegetarian"})
    code = f"""
import json
from embedders import HashingEmbedder
from sem_mem.integrations.langgraph import SemMemStore
with SemMemStore(storage_dir={str(tmp_path / "store")!r}, embedder=HashingEmbedder()) as s:
    item = s.get(("users", "alice"), "diet")
    s.put(("users", "bob"), "job", {{"text": "Bob is a nurse"}})
    print(json.dumps(item.value))
"""
    proc = run_python(code)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"text": "Alice is vegetarian"}
    # this store, open all along, sees what the other process wrote
    hits = store.search(("users",), query="who is a nurse", limit=1)
    assert [(h.namespace, h.key) for h in hits] == [(("users", "bob"), "job")]


def test_a_store_never_leaves_its_root(
    make_store: Callable[..., SemMemStore], tmp_path: Path
) -> None:
    app_a = make_store(namespace="app-a")
    app_b = make_store(namespace="app-b")
    app_a.put(("users", "alice"), "diet", {"text": "Alice is vegetarian", "who": "alice"})
    app_b.put(("users", "alice"), "diet", {"text": "Alice eats everything", "who": "alice"})
    plain = SemanticMemory(str(tmp_path / "store"), namespace="app-a", embedder=HashingEmbedder())
    try:
        plain.remember("a memory of app-a's own, outside LangGraph", {"who": "alice"})
        assert app_a.list_namespaces() == [("users", "alice")] == app_b.list_namespaces()
        for store, text in ((app_a, "vegetarian"), (app_b, "everything")):
            hits = store.search((), query="alice", filter={"who": "alice"}, limit=10)
            assert [h.value["text"].split()[-1] for h in hits] == [text]
        assert len(plain) == 1  # the store wrote nothing in its root namespace itself
    finally:
        plain.close()


@pytest.mark.postgres
def test_the_store_runs_on_postgresql() -> None:
    from test_backend_conformance import cluster_or_skip

    with cluster_or_skip().database() as url:
        store = SemMemStore(database_url=url, embedder=HashingEmbedder())
        try:
            store.put(("users", "alice"), "diet", {"text": "Alice is vegetarian", "n": 1})
            store.put(("users", "bob"), "diet", {"text": "Bob eats fish", "n": 2})
            assert store.get(("users", "alice"), "diet").value["n"] == 1  # type: ignore[union-attr]
            hits = store.search(("users",), query="fish", limit=1)
            assert [h.namespace for h in hits] == [("users", "bob")]
            assert [h.key for h in store.search(("users",), filter={"n": 2})] == ["diet"]
            assert store.list_namespaces() == [("users", "alice"), ("users", "bob")]
        finally:
            store.close()


# -- under an agent ---------------------------------------------------------------------------


def test_a_langgraph_agent_keeps_memories_with_langmem_tools(store: SemMemStore) -> None:
    """A LangChain/LangGraph agent (create_agent, LangGraph's successor to
    create_react_agent) with LangMem's manage/search memory tools, its chat model an
    OpenAI-compatible server: what it remembers for one user lands in that user's
    namespace and is found again in a later run, and never in another user's."""
    pytest.importorskip("langmem")
    pytest.importorskip("langchain_openai")
    from fake_openai import FakeOpenAI, ToolCall
    from langchain.agents import create_agent
    from langchain_openai import ChatOpenAI
    from langmem import create_manage_memory_tool, create_search_memory_tool

    def responder(body: dict[str, Any]) -> Any:
        last = body["messages"][-1]
        if last["role"] == "tool":
            return f"done: {last['content']}"
        text = last["content"] if isinstance(last["content"], str) else ""
        if text.startswith("remember"):
            return ToolCall("manage_memory", {"content": text.removeprefix("remember ")})
        return ToolCall("search_memory", {"query": text})

    namespace = ("memories", "{langgraph_user_id}")
    with FakeOpenAI(api_key="sk-test", responder=responder) as server:
        model = ChatOpenAI(model="gpt-test", api_key="sk-test", base_url=server.base_url)
        agent = create_agent(
            model,
            tools=[create_manage_memory_tool(namespace), create_search_memory_tool(namespace)],
            store=store,
        )
        alice = {"configurable": {"langgraph_user_id": "alice"}}
        bob = {"configurable": {"langgraph_user_id": "bob"}}
        agent.invoke({"messages": [("user", "remember Alice is vegetarian")]}, alice)
        agent.invoke({"messages": [("user", "remember Bob loves steak")]}, bob)

        saved = store.search(("memories", "alice"))
        assert [item.value["content"] for item in saved] == ["Alice is vegetarian"]
        result = agent.invoke({"messages": [("user", "what does she eat?")]}, alice)
    answer = result["messages"][-1].content
    assert "Alice is vegetarian" in answer and "steak" not in answer
    tool_calls = [r.body for r in server.requests if r.path == "/v1/chat/completions"]
    assert {t["function"]["name"] for t in tool_calls[0]["tools"]} == {
        "manage_memory",
        "search_memory",
    }
    assert store.list_namespaces() == [("memories", "alice"), ("memories", "bob")]


def test_two_writers_of_one_key_are_healed(store: SemMemStore, tmp_path: Path) -> None:
    """Two processes that put the same new key at the same moment can both add it; the
    store then reads the newest and the next put leaves exactly one."""
    store.put(("u",), "k", {"text": "first writer"})
    other = SemanticMemory(
        str(tmp_path / "store"),
        namespace=store.sem_mem_namespace(("u",)),
        embedder=HashingEmbedder(),
    )
    try:
        other.remember("second writer", {"text": "second writer", KEY_FIELD: "k"})
        assert len(other) == 2
        item = store.get(("u",), "k")
        assert item is not None and item.value["text"] in {"first writer", "second writer"}
        store.put(("u",), "k", {"text": "settled"})
        assert len(other) == 1
        assert [i.value for i in store.search(("u",))] == [{"text": "settled"}]
    finally:
        other.close()


def test_a_run_of_puts_is_checked_whole_and_the_last_put_of_a_key_wins(
    store: SemMemStore,
) -> None:
    store.put(("u",), "kept", {"text": "already here"})
    with pytest.raises(ValidationError, match="reserved field"):
        store.batch(
            [
                PutOp(("u",), "a", {"text": "one"}),
                PutOp(("u",), "kept", None),
                PutOp(("v",), "b", {KEY_FIELD: "bad"}),
            ]
        )
    assert [i.key for i in store.search(("u",))] == ["kept"]  # nothing of the run stored
    store.batch(
        [
            PutOp(("u",), "a", {"text": "one"}),
            PutOp(("v",), "b", {"text": "two"}),
            PutOp(("u",), "a", {"text": "one, again"}),
            PutOp(("u",), "kept", None),
        ]
    )
    assert [(i.key, i.value["text"]) for i in store.search(("u",))] == [("a", "one, again")]
    assert [i.key for i in store.search(("v",))] == ["b"]
