"""Small PDFs whose pages inflate to huge content streams ("decompression bombs").

Shared by tests/test_pdf_bombs.py and bench/reliability.py. Written by hand: the point
is a file no PDF library would produce on purpose.
"""

from __future__ import annotations

import zlib

__all__ = ["bomb_pdf"]

# one short text-showing line per operator group: cheap to compress, slow to extract
LINE = b"BT /F1 12 Tf 72 720 Td (all work and no play) Tj ET\n"


def bomb_pdf(inflated_bytes: int, *, pages: int = 1) -> bytes:
    """A PDF of ``pages`` pages all sharing one content stream of ``inflated_bytes``."""
    content = LINE * max(1, inflated_bytes // len(LINE))
    stream = zlib.compress(content, 9)
    objects: list[bytes] = []
    kids = " ".join(f"{4 + i} 0 R" for i in range(pages))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode())
    objects.append(
        f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode()
        + stream
        + b"\nendstream"
    )
    font = 4 + pages
    for _ in range(pages):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode()
        )
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return bytes(out)
