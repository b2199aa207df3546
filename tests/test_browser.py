"""The real app in a real browser: ``streamlit run app.py`` driven by headless Chromium.

Debian's Chromium (installed here with apt-get when missing) is driven through
Playwright's Python API with ``executable_path`` (``playwright install`` is never run:
it downloads its own browser). The app runs as a subprocess on 127.0.0.1 with the
product's default embedder, the local MiniLM model, on a store in ``tmp_path``; no
model is configured, so chat answers in memory-only mode. Screenshots of the chat and
of the atlas are saved in the test's ``tmp_path`` and their paths printed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
READY_DEADLINE = 120.0  # seconds for streamlit to answer its health endpoint


EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")


def ensure_chromium() -> Path:
    """Debian's Chromium (and an emoji font for the screenshots), installed with apt-get if
    missing; skips if Chromium is missing and apt-get is impossible."""
    if CHROMIUM.exists() and EMOJI_FONT.exists():
        return CHROMIUM
    apt = shutil.which("apt-get")
    if CHROMIUM.exists() and (apt is None or os.geteuid() != 0):
        return CHROMIUM  # screenshots show boxes instead of emoji; the test still holds
    if apt is None:
        pytest.skip("Chromium is not installed and there is no apt-get to install it")
    if os.geteuid() != 0:
        pytest.skip("Chromium is not installed and installing it with apt-get needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        [apt, "update"],
        [apt, "install", "-y", "chromium", "chromium-driver", "fonts-noto-color-emoji"],
    ):
        proc = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(command)} failed:\n{proc.stderr[-2000:]}")
    assert CHROMIUM.exists(), "apt-get installed chromium but /usr/bin/chromium is missing"
    return CHROMIUM


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Poll Streamlit's health endpoint until it answers, the process dies, or the deadline."""
    deadline = time.monotonic() + READY_DEADLINE
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if http.get(f"{url}/_stcore/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            try:
                proc.wait(timeout=0.25)  # bounded wait between polls, ends early if it dies
            except subprocess.TimeoutExpired:
                pass
    pytest.fail(f"streamlit not ready after {READY_DEADLINE:.0f}s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def streamlit_url(tmp_path: Path) -> Iterator[str]:
    """``streamlit run app.py`` on 127.0.0.1:<free port>, standalone, store in tmp_path."""
    pytest.importorskip("streamlit")
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "SEMMEM_", "CHAT_MODEL", "EMBEDDING_MODEL"))
    }
    env.update(
        MEMORY_STORAGE_DIR=str(tmp_path / "store"),
        SEMMEM_MODEL_CACHE=str(tmp_path / "models"),
        PYTHONPATH=str(ROOT),
        STREAMLIT_BROWSER_GATHER_USAGE_STATS="false",
    )
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(ROOT / "app.py"),
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    log = tmp_path / "streamlit.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def test_chat_and_atlas_in_headless_chromium(streamlit_url: str, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    chromium = ensure_chromium()
    chat_png, atlas_png = tmp_path / "chat.png", tmp_path / "atlas.png"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(90_000)  # the first message loads the MiniLM model
            page.goto(streamlit_url)
            box = page.locator('[data-testid="stChatInputTextArea"]')
            box.wait_for()
            sync_api.expect(page.get_by_text("Memory-only mode").first).to_be_visible()

            messages = page.locator('[data-testid="stChatMessage"]')
            facts = [
                "My name is Sam and I live in Boston",
                "My cat is called Miso",
                "I work as a cardiology fellow",
            ]
            for n, fact in enumerate(facts):
                box.fill(f"remember: {fact}")
                box.press("Enter")
                sync_api.expect(messages.nth(2 * n + 1)).to_contain_text(
                    "Remembered (L2, id", timeout=120_000
                )

            box.fill("Where do I live?")
            box.press("Enter")
            answer = messages.nth(2 * len(facts) + 1)
            sync_api.expect(answer).to_contain_text("Relevant memories")
            sync_api.expect(answer).to_contain_text("My name is Sam and I live in Boston")
            answer.get_by_text("Memories used").click()
            for fact in facts:  # every memory used is listed once the expander is open
                sync_api.expect(answer.get_by_text(fact).last).to_be_visible()
            sync_api.expect(answer.get_by_text("L2").first).to_be_visible()
            page.screenshot(path=str(chat_png), full_page=True)

            page.locator('[data-testid="stSidebar"]').get_by_text("🗺️ Atlas", exact=True).click()
            chart = page.locator('[data-testid="stPlotlyChart"]')
            chart.wait_for()
            sync_api.expect(page.get_by_text("Showing all 3 memories")).to_be_visible()
            sync_api.expect(chart.locator(".scatterlayer .point")).to_have_count(3)
            query = page.get_by_label("Highlight the neighbours of")
            query.fill("Where do I live?")
            query.press("Enter")
            # 3 memories + the query's neighbours ringed + the query's star
            sync_api.expect(chart.locator(".scatterlayer .point")).to_have_count(7)
            sync_api.expect(page.get_by_text("Nearest memories to the query")).to_be_visible()
            page.screenshot(path=str(atlas_png), full_page=True)
        finally:
            browser.close()
    assert chat_png.stat().st_size > 10_000 and atlas_png.stat().st_size > 10_000
    print(f"\nchat screenshot: {chat_png}\natlas screenshot: {atlas_png}")
