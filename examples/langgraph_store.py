"""LangGraph long-term memory kept by Sem-Mem (offline: local embeddings, no chat model).

A graph node saves what each user asks it to remember and answers questions from that
user's memories through LangGraph's store API; then LangMem's search tool reads the
same store. Needs `pip install 'sem-mem[langgraph]' langmem`; run with
`python examples/langgraph_store.py`. The store lives in ./local_memory (namespace
"example-langgraph") unless MEMORY_STORAGE_DIR says otherwise; run it twice and the
second run still knows what the first one was told.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from sem_mem.integrations.langgraph import SemMemStore


class State(TypedDict, total=False):
    message: str
    answer: str


@dataclass
class Context:
    user_id: str


def assistant(state: State, runtime: Runtime[Context]) -> State:
    """Remember "remember ..." messages; answer anything else from memory."""
    assert runtime.store is not None
    namespace = ("memories", runtime.context.user_id)
    message = state["message"]
    if message.lower().startswith("remember "):
        fact = message[len("remember ") :]
        key = hashlib.sha256(fact.encode()).hexdigest()[:16]
        runtime.store.put(namespace, key, {"text": fact})
        return {"answer": f"Noted: {fact}"}
    hits = runtime.store.search(namespace, query=message, limit=1)
    if not hits:
        return {"answer": "I don't know anything about you yet."}
    return {"answer": f"{hits[0].value['text']}  (score {hits[0].score:.2f})"}


def main() -> None:
    with SemMemStore(namespace="example-langgraph", index={"fields": ["text"]}) as store:
        graph = (
            StateGraph(State, context_schema=Context)
            .add_node("assistant", assistant)
            .add_edge(START, "assistant")
            .add_edge("assistant", END)
            .compile(store=store)
        )
        conversation = [
            ("alice", "remember I am vegetarian"),
            ("alice", "remember my sister Maya lives in Lisbon"),
            ("bob", "remember I am allergic to peanuts"),
            ("alice", "what should I cook for dinner?"),
            ("alice", "where does my sister live?"),
            ("bob", "do I have any allergies?"),
        ]
        for user, message in conversation:
            result = graph.invoke({"message": message}, context=Context(user_id=user))
            print(f"{user:>5}: {message}\n       -> {result['answer']}")

        print("\nNamespaces:", store.list_namespaces(prefix=("memories",)))

        try:
            from langmem import create_search_memory_tool
        except ImportError:
            print("(install langmem to see its search tool read this store)")
            return
        search = create_search_memory_tool(("memories", "{langgraph_user_id}"), store=store)
        found = search.invoke(
            {"query": "food preferences"}, {"configurable": {"langgraph_user_id": "alice"}}
        )
        print("LangMem search_memory for alice:", found)


if __name__ == "__main__":
    main()
