"""The Streamlit app, driven with ``streamlit.testing.v1.AppTest`` (no browser).

Each test writes a tiny app script to ``tmp_path`` that builds the app's client the
way the real app does (one shared memory per store, a per-session ``SemanticMemory``
over it) but with the small deterministic ``HashingEmbedder``, and calls
``sem_mem.ui.app.run``. No model is configured: the app is in memory-only mode.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from embedders import HashingEmbedder
from live_server import serve

from sem_mem import SemanticMemory
from sem_mem.conversation import ChatOptions
from sem_mem.ui.client import HttpClient, LocalClient, MemoryClient, local_session_factory

pytest.importorskip("streamlit")
pytest.importorskip("plotly")
fpdf = pytest.importorskip("fpdf")

from streamlit.testing.v1 import AppTest  # noqa: E402

CHAT, MEMORIES, ATLAS = "💬 Chat", "🗂️ Memories", "🗺️ Atlas"

#: shared memories opened by the app scripts (one per store, like st.cache_resource)
SHARED: dict[str, SemanticMemory] = {}


def shared_memory(path: str) -> SemanticMemory:
    """The one memory per store that every session of a test app shares."""
    if path not in SHARED:
        SHARED[path] = SemanticMemory(path, embedder=HashingEmbedder())
    return SHARED[path]


#: HTTP clients opened by the app scripts, closed after each test
HTTP_CLIENTS: list[HttpClient] = []


def http_client(url: str) -> HttpClient:
    client = HttpClient(url)
    HTTP_CLIENTS.append(client)
    return client


LOCAL_SCRIPT = """
from sem_mem.ui.app import run
from sem_mem.ui.client import local_session_factory
from test_ui import shared_memory

run(local_session_factory(lambda: shared_memory({store!r})))
"""

API_SCRIPT = """
from sem_mem.ui.app import run
from test_ui import http_client

run(lambda: http_client({url!r}))
"""


@pytest.fixture(autouse=True)
def _close_shared() -> Iterator[None]:
    yield
    for memory in SHARED.values():
        memory.close()
    SHARED.clear()
    for client in HTTP_CLIENTS:
        client.close()
    HTTP_CLIENTS.clear()


@pytest.fixture
def store(tmp_path: Path) -> str:
    return str(tmp_path / "store")


@pytest.fixture
def make_app(tmp_path: Path, store: str) -> Callable[..., AppTest]:
    """A new browser session of the standalone app on ``store`` (already run once)."""
    script = tmp_path / "app_script.py"
    script.write_text(LOCAL_SCRIPT.format(store=store), encoding="utf-8")

    def make() -> AppTest:
        at = AppTest.from_file(str(script), default_timeout=60)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return make


def say(at: AppTest, text: str) -> AppTest:
    at.chat_input[0].set_value(text).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def assistant_texts(at: AppTest) -> list[str]:
    return [
        " ".join(m.value for m in msg.markdown)
        for msg in at.chat_message
        if msg.name == "assistant"
    ]


def show(at: AppTest, view: str) -> AppTest:
    at.sidebar.radio[0].set_value(view).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def make_pdf(paragraphs: list[str]) -> bytes:
    pdf = fpdf.FPDF()
    pdf.set_font("helvetica", size=11)
    pdf.add_page()
    for paragraph in paragraphs:
        pdf.multi_cell(0, 6, paragraph)
        pdf.ln(6)
    return bytes(pdf.output())


# ----------------------------------------------------------------------------- chat


def test_memory_only_mode_shows_a_banner_and_answers_from_memory(
    make_app: Callable[..., AppTest], store: str
) -> None:
    at = make_app()
    banner = " ".join(w.value for w in at.warning)
    assert "Memory-only mode" in banner and "OPENAI_API_KEY" in banner
    assert "OPENAI_BASE_URL" in banner
    # model widgets are disabled without a model; web search is off by default
    assert at.sidebar.selectbox(key="model_choice").disabled
    assert at.sidebar.toggle(key="web_search").value is False

    say(at, "remember: My name is Sam and I live in Boston")
    assert "Remembered" in assistant_texts(at)[-1]
    say(at, "Where do I live?")
    answer = assistant_texts(at)[-1]
    assert "Memory-only mode" in answer and "I live in Boston" in answer
    used = at.chat_message[-1].expander[0]
    assert used.label == "Memories used (1)"
    assert "L2" in used.markdown[0].value and "Boston" in used.markdown[0].value
    # the fact is in the shared store (L2)
    texts = [m.text for m in shared_memory(store).list()]
    assert texts == ["My name is Sam and I live in Boston"]


def test_auto_memory_saves_personal_facts_and_says_so(make_app: Callable[..., AppTest]) -> None:
    at = make_app()
    say(at, "I'm a cardiology fellow and my favourite colour is teal.")
    captions = [c.value for c in at.chat_message[-1].caption]
    assert any(c.startswith("🧠 auto-memory: saved") for c in captions), captions
    at.sidebar.toggle(key="auto_remember").set_value(False).run()
    say(at, "I'm also a keen marathon runner.")
    captions = [c.value for c in at.chat_message[-1].caption]
    assert not any("saved" in c for c in captions)


def test_instruct_command_updates_the_persistent_instructions(
    make_app: Callable[..., AppTest], store: str
) -> None:
    at = make_app()
    say(at, "instruct: Always answer in French")
    assert "Instruction added" in assistant_texts(at)[-1]
    assert "Always answer in French" in at.sidebar.text_area[0].value
    assert shared_memory(store).instructions.strip() == "Always answer in French"
    # editing in the sidebar replaces them
    at.sidebar.text_area[0].set_value("Be brief")
    at.sidebar.button(key="save_instructions").click().run()
    assert shared_memory(store).instructions.strip() == "Be brief"
    assert at.sidebar.text_area[0].value.strip() == "Be brief"


def test_new_and_saved_threads(make_app: Callable[..., AppTest], store: str) -> None:
    at = make_app()
    say(at, "What is on the agenda for the cardiology meeting?")
    at.button(key="save_thread").click().run()
    assert any("Thread saved" in s.value for s in at.success)
    saved = shared_memory(store).list(source="thread")
    assert len(saved) == 1 and "cardiology meeting" in saved[0].text
    at.button(key="new_thread").click().run()
    assert not at.chat_message


def test_sessions_share_l2_but_each_has_its_own_l1(make_app: Callable[..., AppTest]) -> None:
    alice, bob = make_app(), make_app()
    say(alice, "remember: The clinic opens at 8am")
    say(alice, "When does the clinic open?")
    cache = alice.sidebar.expander[2]
    assert any("clinic opens" in c.value for c in cache.text)  # plain text, not Markdown
    bob.run()
    assert not any("clinic opens" in c.value for c in bob.sidebar.expander[2].text)
    say(bob, "When does the clinic open?")  # L2 is shared: bob finds alice's memory
    assert "The clinic opens at 8am" in assistant_texts(bob)[-1]


# ----------------------------------------------------------------------------- documents


def test_pdf_upload_stores_chunks_with_a_progress_bar(
    make_app: Callable[..., AppTest], store: str
) -> None:
    at = make_app()
    pdf = make_pdf(
        [
            "Beta blockers reduce mortality after myocardial infarction in most patients.",
            "ACE inhibitors are first line for heart failure with reduced ejection fraction.",
        ]
    )
    at.sidebar.file_uploader(key="doc_upload").set_value(("guideline.pdf", pdf, "application/pdf"))
    at.run()
    at.sidebar.button(key="ingest_button").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("guideline.pdf" in s.value and "stored" in s.value for s in at.sidebar.success)
    assert at.sidebar.get("progress")
    chunks = shared_memory(store).list(source="pdf")
    assert chunks and all(c.metadata.get("file") or c.metadata for c in chunks)
    # the same file again stores nothing new
    at.sidebar.button(key="ingest_button").click().run()
    assert any("already ingested" in i.value for i in at.sidebar.info)
    assert len(shared_memory(store).list(source="pdf")) == len(chunks)


# ----------------------------------------------------------------------------- browser


def test_browser_lists_filters_edits_and_deletes(
    make_app: Callable[..., AppTest], store: str
) -> None:
    memory = shared_memory(store)
    keep = memory.remember("Sam lives in Boston")
    gone = memory.remember("Sam's cat is called Miso")
    memory.remember("A chunk of a guideline", source="pdf")
    at = show(make_app(), MEMORIES)
    labels = [e.label for e in at.expander]
    assert sum("Sam" in label for label in labels) == 2
    at.selectbox(key="browser_source").set_value("pdf").run()
    assert [e.label.split(" · ")[1] for e in at.expander if " · " in e.label] == ["pdf"]
    at.selectbox(key="browser_source").set_value("all").run()

    at.button(key=f"delete-{gone}").click().run()
    assert any("for good" in w.value for w in at.warning)  # asks first
    at.button(key=f"cancel-{gone}").click().run()
    assert memory.get(gone).text == "Sam's cat is called Miso"
    at.button(key=f"delete-{gone}").click().run()
    at.button(key=f"confirm-{gone}").click().run()
    assert any("Deleted" in s.value for s in at.success)
    assert not any("Miso" in e.label for e in at.expander)
    assert all(m.id != gone for m in memory.list())

    at.button(key=f"save-{keep}").click().run()  # unchanged: no history event
    assert [e.event for e in memory.history(keep)] == ["created"]
    at.text_area(key=f"edit-text-{keep}").set_value("Sam lives in Cambridge")
    at.button(key=f"save-{keep}").click().run()
    assert memory.get(keep).text == "Sam lives in Cambridge"
    at.toggle(key=f"history-{keep}").set_value(True).run()
    history = [t.value for t in at.text]
    assert any(line.startswith("created ") for line in history)
    assert any(line.startswith("updated ") for line in history)
    assert not any(line.endswith(": ") for line in history)

    memory.remember("Sam lives near the river")
    at.text_input(key="browser_query").set_value("Sam lives Cambridge").run()
    labels = [e.label for e in at.expander if e.label.startswith("#")]
    assert labels[0].startswith("#1 · score ") and "Cambridge" in labels[0]
    scores = [float(label.split("score ")[1].split(" ")[0]) for label in labels]
    assert scores == sorted(scores, reverse=True)  # most relevant first
    at.selectbox(key="browser_source").set_value("pdf").run()  # search honours the filters
    only_pdf = [e.label for e in at.expander if e.label.startswith("#")]
    assert only_pdf and all(" · pdf · " in label for label in only_pdf)


def test_export_then_import_into_another_store(
    make_app: Callable[..., AppTest], store: str, tmp_path: Path
) -> None:
    shared_memory(store).remember("Exported fact about Boston")
    at = show(make_app(), MEMORIES)
    at.button(key="prepare_export").click().run()
    button = at.get("download_button")
    assert button, "no download button after preparing the export"
    client = LocalClient(shared_memory(store))
    data = b"".join(client.export_jsonl())
    assert json.loads(data.splitlines()[1])["text"] == "Exported fact about Boston"

    other = str(tmp_path / "other")
    script = tmp_path / "other_app.py"
    script.write_text(LOCAL_SCRIPT.format(store=other), encoding="utf-8")
    at2 = AppTest.from_file(str(script), default_timeout=60).run()
    show(at2, MEMORIES)
    at2.file_uploader(key="import_file").set_value(("export.jsonl", data, "application/json"))
    at2.run()
    at2.button(key="import_button").click().run()
    assert any("Imported 1 memories" in s.value for s in at2.success)
    assert [m.text for m in shared_memory(other).list()] == ["Exported fact about Boston"]


# ----------------------------------------------------------------------------- atlas


def test_atlas_renders_with_query_neighbours(make_app: Callable[..., AppTest], store: str) -> None:
    at = show(make_app(), ATLAS)
    assert any("No memories yet" in i.value for i in at.info)
    memory = shared_memory(store)
    memory.remember_batch([f"cardiology note {i} about the heart" for i in range(12)])
    memory.remember_batch([f"recipe {i} with garlic and basil" for i in range(12)], source="pdf")
    at.run()
    assert not at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    figure = json.loads(charts[0].proto.spec)
    names = [trace["name"] for trace in figure["data"]]
    assert names == ["manual (12)", "pdf (12)"]
    assert any("Showing all 24 memories" in c.value for c in at.caption)
    at.text_input(key="atlas_query").set_value("heart cardiology").run()
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    names = [trace["name"] for trace in figure["data"]]
    assert "query" in names and "query neighbours" in names
    at.radio(key="atlas_color").set_value("cluster").run()
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert all(trace["name"].startswith(("cluster", "query")) for trace in figure["data"])


def test_atlas_says_when_it_shows_a_sample(make_app: Callable[..., AppTest], store: str) -> None:
    shared_memory(store).remember_batch([f"fact number {i}" for i in range(150)])
    at = show(make_app(), ATLAS)
    at.number_input(key="atlas_max_points").set_value(100).run()
    warning = " ".join(w.value for w in at.warning)
    assert "sample of 100 of 150 memories" in warning


# ----------------------------------------------------------------------------- API client


def test_the_same_app_runs_against_the_api_server(tmp_path: Path) -> None:
    with serve(tmp_path / "server-store") as url:
        script = tmp_path / "api_app.py"
        script.write_text(API_SCRIPT.format(url=url), encoding="utf-8")
        at = AppTest.from_file(str(script), default_timeout=60).run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("API server" in c.value for c in at.sidebar.caption)
        assert "Memory-only mode" in " ".join(w.value for w in at.warning)
        say(at, "remember: My name is Sam and I live in Boston")
        say(at, "Where do I live?")
        assert "I live in Boston" in assistant_texts(at)[-1]
        show(at, ATLAS)
        assert at.get("plotly_chart")
        show(at, MEMORIES)
        assert any("Boston" in e.label for e in at.expander)


def _exercise(client: MemoryClient, pdf: bytes) -> dict[str, object]:
    """Every operation of the interface; returns what a user would see."""
    first = client.remember("Sam lives in Boston", {"kind": "fact"})
    second = client.remember("The clinic opens at 8am")
    reply = client.chat("Where does Sam live?", options=ChatOptions(auto_remember=False))
    client.add_instruction("Be brief")
    client.set_instructions(client.instructions() + "Use metric units\n")
    ingest = client.ingest(pdf, "doc.pdf")
    saved = client.save_thread(reply.session_id)
    client.update(first, text="Sam lives in Cambridge")
    history = [e["event"] for e in client.history(first)]
    client.forget(second)
    export = b"".join(client.export_jsonl())
    atlas = client.atlas(max_points=100, clusters=2)
    assert atlas is not None
    return {
        "recall": [m["text"] for m in client.recall("Cambridge", limit=1)],
        "reply_memories": [m["text"] for m in reply.memories][:1],
        "instructions": client.instructions(),
        "ingest": (ingest["chunks_stored"] > 0, ingest["filename"]),
        "saved": len(saved) >= 1,
        "get": client.get(first)["text"],
        "history": history,
        "sources": sorted({m["source"] for m in client.list_memories(limit=100)}),
        "export_lines": len(export.splitlines()) > 3,
        "atlas": (atlas.total, sorted(set(atlas.sources))),
        "cache": set(client.cache_state()),
        "stats": client.stats()["total_memories"],
        "model": client.model_info().chat_enabled,
    }


def test_local_and_http_clients_behave_the_same(tmp_path: Path) -> None:
    pdf = make_pdf(["Aspirin is used for secondary prevention of cardiovascular events."])
    local = local_session_factory(lambda: shared_memory(str(tmp_path / "local")))()
    with serve(tmp_path / "remote") as url:
        remote = HttpClient(url)
        try:
            assert _exercise(local, pdf) == _exercise(remote, pdf)
        finally:
            remote.close()
    local.close()


# ----------------------------------------------------------------------------- multi-turn

CHAT_LOCAL_SCRIPT = """
from embedders import HashingEmbedder
from sem_mem import SemanticMemory
from sem_mem.ui.app import run
from sem_mem.ui.client import local_session_factory
from test_ui import SHARED

def shared():
    if {store!r} not in SHARED:
        SHARED[{store!r}] = SemanticMemory(
            {store!r}, embedder=HashingEmbedder(), api_key="sk-test", base_url={base!r},
            chat_api={api!r}, chat_model="llama3.1", auto_memory=False,
        )
    return SHARED[{store!r}]

run(local_session_factory(shared))
"""


@pytest.mark.parametrize("mode", ["local", "api"])
@pytest.mark.parametrize("api", ["responses", "chat_completions"])
def test_turn_two_carries_turn_one_in_both_modes(tmp_path: Path, mode: str, api: str) -> None:
    from contextlib import ExitStack

    from chat_wire import assert_carries, turn_bodies
    from fake_openai import FakeOpenAI

    with ExitStack() as stack:
        fake = stack.enter_context(FakeOpenAI(api_key="sk-test"))
        fake.responder = lambda body: "noted"
        script = tmp_path / "chat_app.py"
        if mode == "local":
            source = CHAT_LOCAL_SCRIPT.format(
                store=str(tmp_path / "s"), base=fake.base_url, api=api
            )
        else:
            url = stack.enter_context(
                serve(
                    tmp_path / "s",
                    openai_api_key="sk-test",
                    openai_base_url=fake.base_url,
                    chat_api=api,
                    chat_model="llama3.1",
                    auto_memory=False,
                )
            )
            source = API_SCRIPT.format(url=url)
        script.write_text(source, encoding="utf-8")
        at = AppTest.from_file(str(script), default_timeout=60).run()
        assert not at.exception, [e.value for e in at.exception]

        say(at, "My sister is called Ines")
        say(at, "Who is Ines?")
        assert [t.split(" - ")[0] for t in assistant_texts(at)] == ["noted", "noted"]
        assert not at.error
        first, second = turn_bodies(fake)
        if api == "responses":
            assert "previous_response_id" not in first
            assert fake.knows_response(second["previous_response_id"])
        else:
            assert_carries(second, "My sister is called Ines", None)

        # web search: the toggle says why it is off when the provider cannot search
        toggle = at.sidebar.toggle(key="web_search")
        assert toggle.disabled is (api == "chat_completions")
        if mode == "api":
            assert at.sidebar.selectbox(key="chat_api_choice").disabled

        at.button(key="save_thread").click().run()
        assert any("4 new turn" in s.value for s in at.success)
        at.button(key="new_thread").click().run()
        say(at, "Hello again")
        assert "previous_response_id" not in turn_bodies(fake)[-1]


def test_the_chat_api_selector_switches_the_wire_format(tmp_path: Path) -> None:
    from chat_wire import turn_bodies
    from fake_openai import FakeOpenAI

    with FakeOpenAI(api_key="sk-test") as fake:
        fake.responder = lambda body: "noted"
        script = tmp_path / "chat_app.py"
        script.write_text(
            CHAT_LOCAL_SCRIPT.format(store=str(tmp_path / "s"), base=fake.base_url, api="auto"),
            encoding="utf-8",
        )
        at = AppTest.from_file(str(script), default_timeout=60).run()
        say(at, "first")
        assert "messages" in turn_bodies(fake)[-1]  # auto with a non-OpenAI URL: Chat Completions
        at.sidebar.selectbox(key="chat_api_choice").set_value("responses").run()
        assert not at.exception, [e.value for e in at.exception]
        assert not at.sidebar.toggle(key="web_search").disabled
        say(at, "second")
        assert "input" in turn_bodies(fake)[-1]


def test_search_can_rerank(make_app: Callable[..., AppTest], store: str) -> None:
    from test_rerank import store_chats

    store_chats(shared_memory(store))
    at = show(make_app(), MEMORIES)
    at.text_input(key="browser_query").set_value("What did Caroline research?").run()
    first = next(e.label for e in at.expander if e.label.startswith("#1 "))
    assert "adoption" not in first  # the fused ranking puts another turn first
    at.toggle(key="browser_rerank").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    first = next(e.label for e in at.expander if e.label.startswith("#1 "))
    assert "adoption" in first
    assert any("reranked by the cross-encoder" in c.value for c in at.caption)
