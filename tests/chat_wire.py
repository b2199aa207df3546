"""What a chat turn sent to the fake OpenAI server, in either wire format (for tests).

``turn_bodies`` keeps the requests that answered the user (not query expansion, the
salience judge or distillation); ``assert_carries`` checks that a turn's request
carries an earlier turn: the earlier question in the Chat Completions message list,
or, for the Responses API, the id of the earlier answer as ``previous_response_id``.
"""

from __future__ import annotations

from typing import Any

from fake_openai import FakeOpenAI

from sem_mem.llm.prompts import MEMORY_SYSTEM_CONTEXT

__all__ = ["WIRE_FORMATS", "assert_carries", "turn_bodies"]

WIRE_FORMATS = ("responses", "chat_completions")


def _instructions(body: dict[str, Any]) -> str:
    if "messages" in body:
        return next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    return str(body.get("instructions", ""))


def turn_bodies(server: FakeOpenAI) -> list[dict[str, Any]]:
    """Bodies of the requests that answered a chat turn, oldest first."""
    bodies = [
        (r.path, r.body)
        for r in server.requests
        if r.path.endswith(("/responses", "/chat/completions")) and isinstance(r.body, dict)
    ]
    return [b for _, b in bodies if _instructions(b).startswith(MEMORY_SYSTEM_CONTEXT)]


def assert_carries(body: dict[str, Any], question: str, response_id: str | None) -> None:
    """``body`` (a later turn) carries the turn that asked ``question`` and was answered
    with ``response_id``."""
    if "input" in body:  # Responses API: the provider holds the thread
        assert response_id, "the Responses API returned no id for the earlier turn"
        assert body.get("previous_response_id") == response_id, body
    else:  # Chat Completions: the whole thread is sent
        said = [m["content"] for m in body["messages"] if m["role"] == "user"]
        assert question in said[:-1], said
        roles = [m["role"] for m in body["messages"]]
        assert roles[-3:] == ["user", "assistant", "user"], roles
