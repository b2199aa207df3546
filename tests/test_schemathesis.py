"""Property-based checks of every operation in the real app's OpenAPI schema: never a 5xx.

Schemathesis generates requests from ``/openapi.json`` (valid and invalid ones) and sends
them to a real uvicorn server on 127.0.0.1. Examples per operation are kept small so the
whole run stays well under a minute.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from embedders import HashingEmbedder
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from live_server import serve
from schemathesis import GenerationMode

from sem_mem.config import resolve_settings
from sem_mem.server import ServerConfig, create_app


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    store: Path = tmp_path_factory.mktemp("schemathesis") / "store"
    config = ServerConfig(max_batch=20, max_body_bytes=256 * 1024, max_upload_bytes=256 * 1024)
    with serve(store, config=config, max_text_chars=5_000) as url:
        yield url


@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: object, value: object) -> bytes:
    """POST /import takes JSON Lines: send generated values as one JSON line each."""
    items = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


def _schema() -> schemathesis.BaseSchema:
    """The schema of a real app (building it opens nothing: no store, no network)."""
    app = create_app(
        resolve_settings(env={}, dotenv_path=None, secrets_path=None, storage_dir="unused"),
        embedder=HashingEmbedder(),
        config=ServerConfig(),
    )
    return schemathesis.openapi.from_dict(app.openapi())


SCHEMA = _schema()
LABELS = sorted(result.ok().label for result in SCHEMA.get_all_operations())


def test_every_operation_is_covered() -> None:
    assert len(LABELS) >= 20 and "POST /recall" in LABELS


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("label", LABELS)
@pytest.mark.slow  # many generated requests per operation
def test_no_server_errors(base_url: str, label: str, mode: GenerationMode) -> None:
    operation = SCHEMA.find_operation_by_label(label)
    assert operation is not None

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=8,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, timeout=30)
        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
        )
        assert "Traceback" not in response.text

    try:
        check()
    except Unsatisfiable:
        pytest.skip(f"{label} takes no input that could be invalid")
