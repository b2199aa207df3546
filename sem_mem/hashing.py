"""The content hash of a memory's text: one definition for every module that needs it.

``text_hash`` keys duplicate detection (``content_hash`` in both backends), the
embedding cache and the recall result cache; an export/import or a store copy must
compute it exactly as ``remember`` does, so it lives here and nowhere else.
"""

from __future__ import annotations

import hashlib

__all__ = ["text_hash"]


def text_hash(text: str) -> str:
    """Hex SHA-256 of the UTF-8 text (what the stores keep as ``content_hash``)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
