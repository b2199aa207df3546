"""The bad-input battery: HTTP requests that must each get a 4xx naming what is wrong.

Shared by tests/test_hostile_input.py (every case: a 4xx, never a 5xx) and
bench/reliability.py (the figures table).
"""

from __future__ import annotations

from typing import NamedTuple

import httpx

__all__ = ["CASES", "Case", "run_battery"]

S = '"\\ud800"'  # a lone surrogate, as a JSON escape
BIG = 2**70
DEEP = '{"a":' * 3000 + "1" + "}" * 3000
NDJSON = "application/x-ndjson"


class Case(NamedTuple):
    method: str
    path: str
    body: str | bytes | None
    names: str  # what the error detail must mention
    content_type: str = "application/json"


def _j(template: str) -> str:
    """``template`` with ``@S`` a lone surrogate, ``@BIG`` 2**70 and ``@DEEP`` deep nesting."""
    return template.replace("@S", S).replace("@BIG", str(BIG)).replace("@DEEP", DEEP)


def _line(fields: str) -> str:
    return _j('{"type":"memory","text":"a fact"' + fields + "}\n")


CASES: list[Case] = [
    Case("POST", "/remember", _j('{"text":@S}'), "text"),
    Case("POST", "/remember", _j('{"text":"ok","metadata":{@S:1}}'), "metadata key"),
    Case("POST", "/remember", _j('{"text":"ok","metadata":{"k":@S}}'), "metadata['k']"),
    Case("POST", "/remember", _j('{"text":"ok","metadata":{"k":[{"a":@S}]}}'), "['a']"),
    Case("POST", "/remember", _j('{"text":"ok","metadata":{"k":@BIG}}'), "64 bits"),
    Case("POST", "/remember", _j('{"text":"ok","metadata":@DEEP}'), ""),
    Case("POST", "/remember/batch", _j('{"texts":["a",@S]}'), "texts[1]"),
    Case("POST", "/remember/batch", _j('{"texts":["a"],"metadata":[{"k":@S}]}'), "metadata"),
    Case("POST", "/recall", _j('{"query":@S}'), "query"),
    Case("PUT", "/instructions", _j('{"text":@S}'), "instructions"),
    Case("POST", "/instructions", _j('{"text":@S}'), "instruction"),
    Case("POST", "/chat", _j('{"query":@S}'), "query"),
    Case("POST", "/threads/save", _j('{"messages":[{"role":"user","content":@S}]}'), "surrogate"),
    Case("GET", _j('/memories?metadata={"k":@BIG}'), None, "metadata"),
    Case("GET", '/memories?metadata={"k":"\\ud800"}', None, "metadata"),
    Case("GET", '/memories?metadata={"\\ud800":1}', None, "metadata"),
    Case("PATCH", "/memories/x", _j('{"text":@S}'), "text"),
    Case("PATCH", "/memories/x", _j('{"metadata":{"a":@S}}'), "metadata['a']"),
    Case("POST", "/import", _line(',"created_at":1e300'), "line 1: created_at", NDJSON),
    Case("POST", "/import", _line(',"created_at":Infinity'), "line 1: created_at", NDJSON),
    Case("POST", "/import", _line(',"updated_at":-1e300'), "line 1: updated_at", NDJSON),
    Case("POST", "/import", _line(',"hit_count":1e30'), "line 1: hit_count", NDJSON),
    Case("POST", "/import", _line(',"hit_count":@BIG'), "line 1: hit_count", NDJSON),
    Case("POST", "/import", _line(',"hit_count":-3'), "line 1: hit_count", NDJSON),
    Case("POST", "/import", b'{"type":"memory","text":"\xff\xfe"}\n', "line 1", NDJSON),
    Case("POST", "/import", _line(',"superseded_by":{"x":1}'), "superseded_by", NDJSON),
    Case("POST", "/import", _line(',"id":{"x":1}'), "line 1: id", NDJSON),
    Case("POST", "/import", _line(',"id":@S'), "line 1: id", NDJSON),
    Case("POST", "/import", _line(',"metadata":{"k":@BIG}'), "line 1", NDJSON),
    Case("POST", "/import", _line(',"metadata":@DEEP'), "line 1", NDJSON),
    Case("POST", "/import", _line(',"source":7'), "line 1: source", NDJSON),
    Case(
        "POST",
        "/import",
        _line(',"embedding":"!!!","embedding_model":"test:hashing-64"'),
        "line 1: embedding",
        NDJSON,
    ),
    Case("POST", "/import", _j('{"type":"memory","text":@S}\n'), "line 1: text", NDJSON),
    Case("POST", "/import", "[" * 100_000 + "\n", "line 1", NDJSON),
]


def run_battery(client: httpx.Client) -> list[tuple[Case, int, str]]:
    """Send every case; returns (case, status, detail)."""
    out = []
    for case in CASES:
        response = client.request(
            case.method, case.path, content=case.body, headers={"content-type": case.content_type}
        )
        try:
            detail = str(response.json().get("detail", ""))
        except ValueError:
            detail = response.text
        out.append((case, response.status_code, detail))
    return out
