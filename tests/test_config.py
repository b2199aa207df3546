"""Settings resolution: kwargs > environment > .env > .streamlit/secrets.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from sem_mem import ConfigurationError
from sem_mem.config import resolve_settings


def _files(tmp_path: Path, dotenv: str, secrets: str) -> dict[str, Path]:
    (tmp_path / ".env").write_text(dotenv)
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(secrets)
    return {
        "dotenv_path": tmp_path / ".env",
        "secrets_path": tmp_path / ".streamlit" / "secrets.toml",
    }


def test_priority_order(tmp_path: Path) -> None:
    files = _files(
        tmp_path,
        "CHAT_MODEL=from-dotenv\nCACHE_SIZE=7\nREASONING_EFFORT=high\n",
        'CHAT_MODEL = "from-secrets"\nCACHE_SIZE = 9\nOPENAI_API_KEY = "sk-secret"\n'
        'MEMORY_STORAGE_DIR = "/srv/mem"\n',
    )
    env = {"CHAT_MODEL": "from-env"}
    s = resolve_settings(env=env, **files)
    assert s.chat_model == "from-env"  # env beats .env and secrets
    assert s.cache_size == 7 and s.reasoning_effort == "high"  # .env beats secrets
    assert s.openai_api_key == "sk-secret" and s.storage_dir == "/srv/mem"  # secrets last
    s = resolve_settings(env=env, chat_model="from-kwarg", cache_size=3, **files)
    assert (s.chat_model, s.cache_size) == ("from-kwarg", 3)


def test_defaults_with_nothing_configured() -> None:
    s = resolve_settings(env={}, dotenv_path=None, secrets_path=None)
    assert (s.storage_dir, s.cache_size, s.embedder, s.hnsw_m, s.hnsw_ef_construction) == (
        "./local_memory",
        20,
        "auto",
        16,
        100,
    )
    assert s.auto_memory is True and s.web_search is False


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"CACHE_SIZE": "lots"}, "'cache_size' must be a int"),
        ({"AUTO_MEMORY": "maybe"}, "true or false"),
        ({"SEMMEM_EMBEDDER": "magic"}, "local, openai"),
        ({"HNSW_M": "0"}, "hnsw_m"),
    ],
)
def test_bad_values_are_named(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        resolve_settings(env=env, dotenv_path=None, secrets_path=None)


def test_unknown_keyword_is_an_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown setting"):
        resolve_settings(env={}, dotenv_path=None, secrets_path=None, colour="blue")


def test_import_does_nothing(tmp_path: Path) -> None:
    """Importing the package reads no settings, opens no files, loads no heavy module."""
    from conftest import run_python

    out = run_python(
        f"import os, sys; os.chdir({str(tmp_path)!r}); import sem_mem\n"
        "print([m for m in ('sem_mem.core', 'hnswlib', 'onnxruntime', 'openai', 'sqlite3')"
        " if m in sys.modules])"
    )
    assert out.stdout.strip() == "[]"
    assert list(tmp_path.iterdir()) == []
