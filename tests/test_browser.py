"""The real app in a real browser: ``streamlit run app.py`` driven by headless Chromium.

Debian's Chromium (installed by ``scripts/test-setup.sh``, which ``make test`` runs) is
driven through Playwright's Python API with ``executable_path`` (``playwright install`` is
never run: it downloads its own browser). The app runs as a subprocess on 127.0.0.1 with the
product's default embedder, the local MiniLM model, on a store in ``tmp_path``; no
model is configured, so chat answers in memory-only mode. Screenshots of the chat and
of the atlas are saved in the test's ``tmp_path`` and their paths printed.
"""

from __future__ import annotations

import os
import re
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
READY_DEADLINE = 120.0  # seconds for streamlit to start listening


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium, installed by the test command's set-up (``scripts/test-setup.sh``,
    run by ``make test``), never by a test. Missing: a skip with the reason, or under CI
    (``CI`` set) a failure, so CI cannot pass without driving the browser."""
    if CHROMIUM.exists():
        return CHROMIUM
    reason = f"{CHROMIUM} is missing: `bash scripts/test-setup.sh` (run by `make test`) installs it"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def wait_for_url(proc: subprocess.Popen[bytes], log: Path) -> str:
    """The URL Streamlit prints once it listens (it binds port 0 itself: no port guessing)."""
    deadline = time.monotonic() + READY_DEADLINE
    while time.monotonic() < deadline:
        match = re.search(r"URL: (http://127\.0\.0\.1:\d+)", log.read_text(errors="replace"))
        if match:
            return match.group(1)
        try:
            proc.wait(timeout=0.25)  # bounded wait between reads of the log, ends if it dies
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
    pytest.fail(f"streamlit not ready after {READY_DEADLINE:.0f}s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def streamlit_url(chromium: Path, tmp_path: Path) -> Iterator[str]:
    """The browser is checked first (``chromium``): a missing browser costs no app start.
    ``streamlit run app.py`` on 127.0.0.1, port 0 (Streamlit binds a free port and prints
    it), standalone, store in tmp_path."""
    pytest.importorskip("streamlit")
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
        "0",
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
    try:
        url = wait_for_url(proc, log)
        assert httpx.get(f"{url}/_stcore/health", timeout=30).status_code == 200
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def test_chat_and_atlas_in_headless_chromium(
    chromium: Path, streamlit_url: str, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
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
