"""Absolute dates named in a query ("on 8 May, 2023", "in December 2023", "in 2024"),
as time windows that recall can match against when memories happened.

Hand-written, because the parsers on PyPI (dateparser, dateutil's fuzzy mode) also
read relative phrases ("last week") against the wrong clock and find dates in
ordinary words; recall needs only the unambiguous absolute forms, in English.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime

__all__ = ["query_windows"]

_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS.update({m.lower(): i for i, m in enumerate(calendar.month_abbr) if m})
_MONTHS["sept"] = 9
_MON = (
    r"(january|february|march|april|may|june|july|august|september|october|november|december"
    r"|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?"
)
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"((?:1[89]|2[0-9])\d\d)"
_PATTERNS: list[tuple[re.Pattern[str], tuple[str, ...]]] = [
    (re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MON},?\s*{_YEAR}\b", re.I), ("d", "m", "y")),
    (re.compile(rf"\b{_MON}\s+{_DAY},?\s*{_YEAR}\b", re.I), ("m", "d", "y")),
    (re.compile(rf"\b{_YEAR}-(\d\d)-(\d\d)\b"), ("y", "n", "d")),
    (re.compile(rf"\b{_MON},?\s+{_YEAR}\b", re.I), ("m", "y")),
    (re.compile(rf"\b(?:in|during|of|since|from)\s+{_YEAR}\b", re.I), ("y",)),
]


def query_windows(text: str) -> list[tuple[float, float]]:
    """``[(start, end), ...]`` in unix seconds (UTC) for each absolute date in ``text``:
    a day, a month or a year. Overlapping mentions count once (the most precise wins)."""
    found: list[tuple[float, float]] = []
    taken: list[tuple[int, int]] = []
    for pattern, order in _PATTERNS:
        for match in pattern.finditer(text):
            if any(a < match.end() and match.start() < b for a, b in taken):
                continue
            parts = dict(zip(order, match.groups(), strict=True))
            window = _window(parts)
            if window is not None:
                taken.append((match.start(), match.end()))
                found.append(window)
    return found


def _window(parts: dict[str, str]) -> tuple[float, float] | None:
    year = int(parts["y"])
    month = _MONTHS.get(parts["m"].lower()) if "m" in parts else None
    if "n" in parts:
        month = int(parts["n"])
    try:
        if "d" in parts and month:
            start = datetime(year, month, int(parts["d"]), tzinfo=UTC)
            return start.timestamp(), start.timestamp() + 86_400
        if month:
            start = datetime(year, month, 1, tzinfo=UTC)
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            return start.timestamp(), end.timestamp()
        start, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
        return start.timestamp(), end.timestamp()
    except ValueError:  # 31 February and the like: not a date
        return None
