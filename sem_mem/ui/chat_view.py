"""Chat view: messages with the memories each answer used, commands, thread buttons.

Commands, as in the seed: ``remember: <text>`` stores a fact in L2, ``instruct: <text>``
appends a persistent instruction. Anything else is answered with memory as context
(in memory-only mode: the relevant memories and a notice).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import SemMemError
from .client import new_thread_title

if TYPE_CHECKING:
    from .client import MemoryClient

__all__ = ["ChatOptions", "handle_message", "parse_command", "render", "reset_thread"]

_COMMAND = re.compile(r"^\s*(remember|instruct)\s*:\s*(.*)$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class ChatOptions:
    """What the sidebar chose for the next turn."""

    model: str | None = None
    reasoning_effort: str | None = None
    temperature: float | None = None
    web_search: bool = False
    auto_remember: bool = True


def parse_command(text: str) -> tuple[str, str] | None:
    """``("remember"|"instruct", argument)`` for a command, else ``None``."""
    match = _COMMAND.match(text)
    return (match.group(1).lower(), match.group(2).strip()) if match else None


def reset_thread(state: Any) -> None:
    """Start a new thread in ``state`` (``st.session_state``): memory stays, history goes."""
    state["messages"] = []
    state["previous_response_id"] = None
    state["thread_title"] = new_thread_title()


def _thread(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The conversation the model sees: chat turns only, no commands or notices."""
    return [
        {"role": m["role"], "content": m["content"]} for m in messages if m.get("in_thread", False)
    ]


def handle_message(
    client: MemoryClient, state: Any, text: str, options: ChatOptions, chat_enabled: bool
) -> dict[str, Any]:
    """Run one message (command or question); append both sides to ``state["messages"]``.

    Returns the assistant message appended. Errors become an assistant message that
    says what failed; nothing is raised to Streamlit.
    """
    messages: list[dict[str, Any]] = state["messages"]
    command = parse_command(text)
    user: dict[str, Any] = {"role": "user", "content": text.strip(), "in_thread": False}
    reply: dict[str, Any] = {"role": "assistant", "content": "", "in_thread": False}
    try:
        if command is not None:
            name, argument = command
            if name == "remember":
                memory_id = client.remember(argument)
                reply["content"] = f"🧠 Remembered (L2, id `{memory_id[:12]}`): {argument}"
            else:
                client.add_instruction(argument)
                state["instructions_version"] = state.get("instructions_version", 0) + 1
                reply["content"] = f"📌 Instruction added: {argument}"
        else:
            answer = client.chat(
                text,
                previous_response_id=state.get("previous_response_id"),
                thread=_thread(messages),
                model=options.model,
                reasoning_effort=options.reasoning_effort,
                temperature=options.temperature,
                web_search=options.web_search,
                auto_remember=options.auto_remember,
            )
            user["in_thread"] = True
            reply.update(
                content=answer.response,
                memories=answer.memories,
                auto_memory=answer.auto_memory,
                logs=answer.logs,
                in_thread=chat_enabled,
            )
            if answer.response_id:
                state["previous_response_id"] = answer.response_id
    except SemMemError as exc:
        reply["content"] = f"⚠️ {type(exc).__name__}: {exc}"
        reply["error"] = True
    messages.extend([user, reply])
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
        turns = [m for m in state["messages"] if m.get("in_thread")]
        if not turns:
            c3.info("Nothing to save yet.")
        else:
            try:
                ids = client.save_thread(
                    [{"role": m["role"], "content": m["content"]} for m in turns],
                    title=state["thread_title"],
                )
                c3.success(f"Thread saved to L2 ({len(ids)} memories).")
            except SemMemError as exc:
                c3.error(f"Could not save the thread: {exc}")
    prompt = st.chat_input("Ask something, or  remember: <fact>  /  instruct: <rule>")
    if prompt and prompt.strip():
        with st.spinner("Thinking…"):
            handle_message(client, state, prompt, options, chat_enabled)
    for message in state["messages"]:
        _show_message(message)
