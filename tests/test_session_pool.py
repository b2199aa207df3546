"""The embedder's session pool: wide first, bounded, exclusive, survives a failed open."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from sem_mem.embedders.session_pool import SessionPool


def test_concurrent_runs_never_share_a_session_and_never_exceed_the_size() -> None:
    counter = itertools.count(1)
    pool = SessionPool(0, lambda: next(counter), size=3)
    inside = threading.Barrier(3, timeout=30)  # three runs at once, in two waves
    held: list[int] = []
    shared: list[int] = []
    guard = threading.Lock()

    def borrow(_: int) -> int:
        with pool.session() as session:
            with guard:
                shared.extend([session] if session in held else [])
                held.append(session)
                at_once = len(held)
            inside.wait()  # all three of this wave hold a session here
            with guard:
                held.remove(session)
        return at_once

    with ThreadPoolExecutor(6) as executor:
        counts = list(executor.map(borrow, range(6)))
    assert max(counts) == 3  # the sessions really were in use together...
    assert pool.opened == 3  # ...yet no more than three were ever opened
    assert shared == []  # never lent to two runs at once


def test_a_session_that_fails_to_open_frees_its_slot() -> None:
    attempts = []

    def open_session() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("disk went away")
        return "second"

    pool = SessionPool("first", open_session, size=2)
    with pool.session() as first:
        with pytest.raises(OSError, match="disk went away"), pool.session():
            pass
        assert pool.opened == 1
        with pool.session() as second:  # the slot was given back: a retry opens one
            assert (first, second) == ("first", "second")
    assert pool.opened == 2


def test_a_lone_caller_always_gets_the_wide_session() -> None:
    pool = SessionPool("wide", lambda: "narrow", size=4)
    for _ in range(5):
        with pool.session() as session:
            assert session == "wide"
    assert pool.opened == 1  # no narrow session was ever needed
    with pool.session() as first, pool.session() as second:
        assert (first, second) == ("wide", "narrow")
