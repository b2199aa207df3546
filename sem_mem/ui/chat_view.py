"""Chat view: messages with the memories each answer used, commands, thread buttons.

The conversation itself (the thread, its continuation, ``remember:``/``instruct:``
commands, thread saving) belongs to the engine's :class:`~sem_mem.conversation.ChatSession`
(in this process, or on the API server in API mode); this view keeps only what it
shows, and the session id to continue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..conversation import ChatOptions
from ..errors import SemMemError
from .client import new_thread_title

if TYPE_CHECKING:
    from .client import MemoryClient

__all__ = ["ChatOptions", "handle_message", "render", "reset_thread"]


def reset_thread(state: Any) -> None:
    """Start a new conversation in ``state`` (``st.session_state``): memory stays."""
    state["messages"] = []
    state["session_id"] = new_thread_title()


def handle_message(
    client: MemoryClient, state: Any, text: str, options: ChatOptions, chat_enabled: bool
) -> dict[str, Any]:
    """Run one message (command or question) in the session; append both sides to
    ``state["messages"]`` (what the page shows). Returns the assistant message.

    Errors become an assistant message that says what failed; nothing is raised to
    Streamlit.
    """
    user: dict[str, Any] = {"role": "user", "content": text.strip()}
    reply: dict[str, Any] = {"role": "assistant", "content": ""}
    try:
        answer = client.chat(text, session_id=state.get("session_id"), options=options)
        state["session_id"] = answer.session_id
        if answer.command == "remember":
            fact = answer.response.split(":", 1)[-1].strip()
            short = (answer.memory_id or "")[:12]
            reply["content"] = f"🧠 Remembered (L2, id `{short}`): {fact}"
        elif answer.command == "instruct":
            state["instructions_version"] = state.get("instructions_version", 0) + 1
            reply["content"] = f"📌 {answer.response}"
        else:
            reply.update(
                content=answer.response,
                memories=answer.memories,
                auto_memory=answer.auto_memory,
                logs=answer.logs,
            )
    except SemMemError as exc:
        reply["content"] = f"⚠️ {type(exc).__name__}: {exc}"
        reply["error"] = True
    state["messages"].extend([user, reply])
    return reply


def _show_message(message: Mapping[str, Any]) -> None:
    import streamlit as st

    with st.chat_message(message["role"]):
        if message.get("error"):
            st.error(message["content"])
        else:
            st.markdown(message["content"])
        memories = message.get("memories")
        if memories is not None:
            with st.expander(f"Memories used ({len(memories)})"):
                if not memories:
                    st.caption("No relevant memories.")
                for m in memories:
                    st.markdown(
                        f"- `{m['tier']}` score {m['score']:.2f} · sim {m['similarity']:.2f} · "
                        f"*{m['source']}* · {m['text']}"
                    )
        for line in message.get("auto_memory", ()):
            st.caption(f"🧠 {line}")
        if message.get("logs"):
            with st.expander("Logs"):
                st.code("\n".join(message["logs"]), language=None)


def render(
    client: MemoryClient, state: Any, options: ChatOptions, chat_enabled: bool, reason: str
) -> None:
    """Draw the chat page and run the message typed in the chat box, if any."""
    import streamlit as st

    st.subheader("💬 Chat with memory")
    if not chat_enabled:
        st.warning(
            "**Memory-only mode**: no chat model is configured "
            f"({reason or 'no OPENAI_API_KEY or OPENAI_BASE_URL'}). Answers list the "
            "relevant memories instead of a model's reply; everything else works.\n\n"
            "To chat with a model, set `OPENAI_API_KEY=sk-…` (OpenAI) or "
            "`OPENAI_BASE_URL=http://localhost:11434/v1` (an OpenAI-compatible server such as "
            "Ollama) and `CHAT_MODEL`, in the environment or `.env`"
            + (" of the API server" if client.kind == "api" else "")
            + ", then restart.",
            icon="ℹ️",
        )
    c1, c2, c3 = st.columns([1, 1, 3])
    if c1.button("🆕 New thread", key="new_thread"):
        reset_thread(state)
    if c2.button("💾 Save thread", key="save_thread"):
        if not state["messages"]:
            c3.info("Nothing to save yet.")
        else:
            try:
                ids = client.save_thread(state["session_id"])
                c3.success(f"Thread saved to L2 ({len(ids)} new turn(s)).")
            except SemMemError as exc:
                c3.error(f"Could not save the thread: {exc}")
    prompt = st.chat_input("Ask something, or  remember: <fact>  /  instruct: <rule>")
    if prompt and prompt.strip():
        with st.spinner("Thinking…"):
            handle_message(client, state, prompt, options, chat_enabled)
    for message in state["messages"]:
        _show_message(message)
