"""SmartCache: the L1 tier, a segmented LRU held in RAM. Pure logic, no I/O.

Two segments share ``capacity`` slots:

* **probation** takes every newly recalled memory;
* **protected** takes a memory recalled again while in probation (its second hit).

When protected outgrows its share (``protected_ratio`` of the capacity) its least
recently used entry is demoted to the head of probation; when the whole cache is
full, probation's least recently used entry is evicted. A scan of one-off recalls
therefore never flushes the memories that keep being used.

The cache stores whatever value the caller gives it (the core keeps hydrated
records: text, metadata, vector) keyed by memory id; ``discard`` removes an id
at once, which the core calls whenever a memory is updated, superseded or forgotten.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Generic, TypeVar

from .errors import ValidationError

__all__ = ["SmartCache"]

V = TypeVar("V")


class SmartCache(Generic[V]):
    """Segmented LRU with probation and protected tiers (thread-safe)."""

    def __init__(self, capacity: int = 20, *, protected_ratio: float = 0.8) -> None:
        if capacity < 0:
            raise ValidationError(f"cache capacity must be >= 0, got {capacity}")
        if not 0.0 < protected_ratio < 1.0:
            raise ValidationError(f"protected_ratio must be in (0, 1), got {protected_ratio}")
        self.capacity = capacity
        self.protected_capacity = int(capacity * protected_ratio)
        self._probation: OrderedDict[str, V] = OrderedDict()  # last = most recent
        self._protected: OrderedDict[str, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._probation) + len(self._protected)

    def __contains__(self, key: object) -> bool:
        return key in self._probation or key in self._protected

    def get(self, key: str) -> V | None:
        """Look up without changing recency (counts a hit or a miss)."""
        with self._lock:
            value = self._protected.get(key)
            if value is None:
                value = self._probation.get(key)
            if value is None:
                self.misses += 1
            else:
                self.hits += 1
            return value

    def peek(self, key: str) -> V | None:
        """Look up without touching recency or the hit statistics."""
        with self._lock:
            value = self._protected.get(key)
            return value if value is not None else self._probation.get(key)

    def touch(self, key: str, value: V) -> None:
        """Record a use of ``key``: admit to probation, or promote/refresh as the rules say."""
        if self.capacity == 0:
            return
        with self._lock:
            if key in self._protected:
                self._protected[key] = value
                self._protected.move_to_end(key)
                return
            if key in self._probation:
                del self._probation[key]
                self._protected[key] = value
                self._rebalance()
                return
            self._probation[key] = value
            self._rebalance()

    def admit(self, key: str, value: V, *, protected: bool = False) -> None:
        """Place ``key`` directly (used to warm the cache from persisted hit counts)."""
        if self.capacity == 0:
            return
        with self._lock:
            self._probation.pop(key, None)
            self._protected.pop(key, None)
            (self._protected if protected else self._probation)[key] = value
            self._rebalance()

    def discard(self, key: str) -> bool:
        """Remove ``key`` from both tiers; True if it was cached."""
        with self._lock:
            found = self._probation.pop(key, None) is not None
            found = (self._protected.pop(key, None) is not None) or found
            return found

    def discard_many(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.discard(key)

    def clear(self) -> None:
        with self._lock:
            self._probation.clear()
            self._protected.clear()

    def _rebalance(self) -> None:
        while len(self._protected) > self.protected_capacity:
            key, value = self._protected.popitem(last=False)
            self._probation[key] = value
            self._probation.move_to_end(key)  # demoted: most recent in probation
        while len(self._probation) + len(self._protected) > self.capacity:
            if self._probation:
                self._probation.popitem(last=False)
            else:  # only when protected_capacity == capacity, which the ratio forbids
                self._protected.popitem(last=False)

    def snapshot(self) -> dict[str, list[tuple[str, V]]]:
        """Both tiers, most recently used first."""
        with self._lock:
            return {
                "protected": list(reversed(self._protected.items())),
                "probation": list(reversed(self._probation.items())),
            }

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def stats(self) -> dict[str, float | int]:
        return {
            "capacity": self.capacity,
            "size": len(self),
            "protected": len(self._protected),
            "probation": len(self._probation),
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": round(self.hit_rate, 4),
        }
