"""SemMemStore against LangGraph's own InMemoryStore, operation by operation.

Both stores hold the same N items spread over U user namespaces (``("users", "u7")``)
and embed with the same embedder, so the figures compare the stores, not the models:
a 384-dimension hashing embedder by default (``--embedder local`` uses MiniLM, whose
query embedding then dominates both). Each round times ``get`` of random keys,
``search`` with a query in one user's namespace, the same with a filter, ``search``
without a query (a listing) and ``list_namespaces``, interleaved call by call between
the stores (the load of a shared machine changes faster than a round lasts); every
query text is new, so no cached vector is reused. The tables show the median over
rounds of each operation's p50 and p99. Writing the N items (``batch`` of 100
``PutOp``s at a time) is timed once per store. SemMemStore commits every batch to
SQLite (fsync) before it returns; InMemoryStore keeps a dict and loses it on exit.

    python -m bench.langgraph_store [--n 2000] [--users 10] [--rounds 3] [--ops 200]

Results go to ``bench/results/langgraph_store.{md,json}`` (``langgraph_store_local`` with
``--embedder local``).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

try:
    from bench._common import Table, fmt, machine, median, percentiles_ms, ratio, write_results
    from bench.server_load import WORDS
except ModuleNotFoundError:  # run as a script from inside bench/
    from _common import (  # type: ignore[no-redef]
        Table,
        fmt,
        machine,
        median,
        percentiles_ms,
        ratio,
        write_results,
    )
    from server_load import WORDS  # type: ignore[no-redef]

from langgraph.store.base import BaseStore, PutOp
from langgraph.store.memory import InMemoryStore

from sem_mem.embedders.base import Embedder
from sem_mem.integrations.langgraph import SemMemStore


class HashingEmbedder(Embedder):
    """Bag-of-words feature hashing, 384 dimensions: cheap and deterministic."""

    dimensions = 384
    model_id = "bench:hashing-384"
    batch_size = 256

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dimensions] += 1.0 if (h >> 32) & 1 else -1.0
            out[row, -1] += 0.01
        return out


def make_items(n: int, users: int, rng: random.Random) -> list[tuple[tuple[str, str], str, dict]]:
    items = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(10))
        value = {"text": text, "kind": rng.choice(["fact", "preference", "event"]), "i": i}
        items.append((("users", f"u{i % users}"), f"k{i}", value))
    return items


def run_ops(
    stores: dict[str, BaseStore], items: list[Any], users: int, ops: int, rng: random.Random
) -> dict[str, dict[str, list[float]]]:
    """Milliseconds of each operation on each store, ``ops`` times each.

    Interleaved call by call (store A, store B, then B, A, ...), so both see the same
    load: on a shared 2-core machine the load changes faster than a round lasts.
    """
    clock = time.perf_counter
    times: dict[str, dict[str, list[float]]] = {name: {} for name in stores}
    order = list(stores.items())
    for n in range(ops):
        ns, key, _value = rng.choice(items)
        query = " ".join(rng.choice(WORDS) for _ in range(3)) + f" q{n}"  # never repeated
        user = ("users", f"u{rng.randrange(users)}")
        order.reverse()
        for name, store in order:
            calls: dict[str, Callable[[], object]] = {
                "get": partial(store.get, ns, key),
                # each store gets its own query text, so neither reuses a cached vector
                "search (query)": partial(store.search, user, query=f"{query} {name}", limit=5),
                "search (query + filter)": partial(
                    store.search, user, query=f"{query} {name} f", filter={"kind": "event"}
                ),
                "search (no query)": partial(store.search, user, limit=10),
                "list_namespaces": partial(store.list_namespaces, prefix=("users",)),
            }
            for op, call in calls.items():
                start = clock()
                call()
                times[name].setdefault(op, []).append((clock() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--embedder", choices=["hashing", "local"], default="hashing")
    args = parser.parse_args()

    if args.embedder == "local":
        from sem_mem.embedders.local import LocalEmbedder

        embedder: Embedder = LocalEmbedder()
    else:
        embedder = HashingEmbedder()
    items = make_items(args.n, args.users, random.Random(7))
    tmp = Path(tempfile.mkdtemp(prefix="bench-langgraph-"))
    stores: dict[str, BaseStore] = {
        "SemMemStore (SQLite)": SemMemStore(
            storage_dir=str(tmp / "store"), embedder=embedder, index={"fields": ["text"]}
        ),
        "InMemoryStore": InMemoryStore(
            index={
                "dims": embedder.dimensions,
                "embed": lambda texts: embedder.encode(list(texts)).tolist(),
                "fields": ["text"],
            }
        ),
    }
    write_ms: dict[str, float] = {}
    for name, store in stores.items():
        start = time.perf_counter()
        for i in range(0, len(items), 100):
            store.batch([PutOp(ns, key, value) for ns, key, value in items[i : i + 100]])
        write_ms[name] = (time.perf_counter() - start) * 1000

    p50s: dict[str, dict[str, list[float]]] = {name: {} for name in stores}
    p99s: dict[str, dict[str, list[float]]] = {name: {} for name in stores}
    for round_ in range(args.rounds):
        per_store = run_ops(stores, items, args.users, args.ops, random.Random(round_))
        for name, times in per_store.items():
            for op, values in times.items():
                p50, p99 = percentiles_ms(values)
                p50s[name].setdefault(op, []).append(p50)
                p99s[name].setdefault(op, []).append(p99)

    ours, theirs = "SemMemStore (SQLite)", "InMemoryStore"
    table = Table(
        f"{args.n:,} items in {args.users} namespaces, {args.embedder} embedder "
        f"(ms, median of {args.rounds} rounds of {args.ops} calls)",
        ["operation", f"{ours} p50", f"{ours} p99", f"{theirs} p50", f"{theirs} p99", "ratio p50"],
    )
    for op in p50s[ours]:
        a, b = median(p50s[ours][op]), median(p50s[theirs][op])
        table.add(
            op, fmt(a), fmt(median(p99s[ours][op])), fmt(b), fmt(median(p99s[theirs][op])),
            ratio(a, b),
        )  # fmt: skip
    table.add(
        f"write {args.n:,} items (batch of 100 PutOps)",
        fmt(write_ms[ours]),
        "",
        fmt(write_ms[theirs]),
        "",
        ratio(write_ms[ours], write_ms[theirs]),
    )
    table.notes.append(
        "ratio: SemMemStore / InMemoryStore (above 1x: SemMemStore is slower). SemMemStore "
        "is persistent (an fsync per write batch) and its search is hybrid (vector + full text); "
        "InMemoryStore keeps a dict and brute-forces cosine similarity."
    )
    print(table.markdown())
    write_results(
        "langgraph_store" if args.embedder == "hashing" else f"langgraph_store_{args.embedder}",
        title="SemMemStore vs LangGraph's InMemoryStore",
        intro=[__doc__.split("\n\n")[1].replace("\n", " ")],
        tables=[table],
        meta=machine(["langgraph", "numpy", "hnswlib"]),
        data={"p50": p50s, "p99": p99s, "write_ms": write_ms, "args": vars(args)},
    )
    for store in stores.values():
        if isinstance(store, SemMemStore):
            store.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
