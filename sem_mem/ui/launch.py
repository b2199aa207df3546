"""Start the Streamlit app: ``sem-mem ui`` and ``python -m sem_mem.ui.launch``.

Runs ``streamlit run <sem_mem/ui/app.py>`` in a child process (the app file ships
inside the package, so this works from an installed wheel as well as from a clone)
with usage statistics off, and waits for it. ``--api-url`` makes the app a client of
the API server; otherwise it opens the local store (``MEMORY_STORAGE_DIR``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["APP_PATH", "build_command", "launch", "main"]

#: the Streamlit script ``launch`` runs
APP_PATH = Path(__file__).with_name("app.py")


def build_command(
    *,
    host: str = "127.0.0.1",
    port: int = 8501,
    headless: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``streamlit run`` command line (``extra`` goes to Streamlit as given)."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP_PATH),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true" if headless else "false",
        "--browser.gatherUsageStats",
        "false",
        *extra,
    ]


def launch(
    args: Sequence[str] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 8501,
    api_url: str | None = None,
    storage_dir: str | None = None,
    headless: bool = True,
    env: Mapping[str, str] | None = None,
) -> int:
    """Run the app until it exits (Ctrl-C); returns Streamlit's exit code.

    ``args`` are extra Streamlit options (e.g. ``["--theme.base", "dark"]``).
    ``api_url`` sets ``SEMMEM_API_URL`` and ``storage_dir`` ``MEMORY_STORAGE_DIR``
    for the app; ``env`` replaces ``os.environ`` as the base environment.
    """
    child_env = dict(os.environ if env is None else env)
    if api_url:
        child_env["SEMMEM_API_URL"] = api_url
    if storage_dir:
        child_env["MEMORY_STORAGE_DIR"] = storage_dir
    try:
        import streamlit  # noqa: F401
    except ImportError:
        print("the UI needs Streamlit: pip install 'sem-mem[app]'", file=sys.stderr)
        return 2
    command = build_command(host=host, port=port, headless=headless, extra=args)
    try:
        return subprocess.call(command, env=child_env)
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sem_mem.ui.launch [--host H] [--port P] [--api-url URL] [-- options]``."""
    parser = argparse.ArgumentParser(prog="sem-mem ui", description="Start the Sem-Mem web UI.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8501, help="port to listen on")
    parser.add_argument("--api-url", default=None, help="use the API server at this URL")
    parser.add_argument("--storage-dir", default=None, help="local store (MEMORY_STORAGE_DIR)")
    parser.add_argument("streamlit_args", nargs="*", help="extra Streamlit options, after --")
    ns = parser.parse_args(argv)
    return launch(
        ns.streamlit_args,
        host=ns.host,
        port=ns.port,
        api_url=ns.api_url,
        storage_dir=ns.storage_dir,
    )


if __name__ == "__main__":
    raise SystemExit(main())
