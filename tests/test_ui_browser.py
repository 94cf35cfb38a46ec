"""The chat in a real browser: `streamlit run app.py` on the test index, driven by Chromium.

Asks a question, opens a citation, uploads documents, and takes screenshots; with
QA_UPDATE_SCREENSHOTS=1 they replace the README's (docs/chat.png, docs/sources.png, docs/upload.png), otherwise they go to the test's tmp folder. Skipped when Debian's chromium (apt package `chromium`) is not installed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from conftest import CORPUS_FILE, ROOT, private_copy
from streamlit_server import free_port, streamlit_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ANSWER_MS = 120_000  # the first question also waits for the server to load the model and index
SOLDIERS = "Combien de soldats la Russie a-t-elle déployés en janvier 2022 ?"
LE_POINT = "Le Kazakhstan en proie aux émeutes"
ARAL = "# Aral\n\nLa mer d'Aral, partagée entre le Kazakhstan et l'Ouzbékistan, a perdu les trois quarts de sa surface depuis 1960.\n"
ARAL_QUESTION = "Depuis quand la mer d'Aral a-t-elle perdu sa surface ?"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt install chromium)")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


@pytest.fixture
def server_url(index_dir, tmp_path):
    """A `streamlit run app.py` on the test index (votes go to a temporary file), stopped afterwards."""
    port = free_port()
    env = {**os.environ, "QA_INDEX": str(index_dir), "QA_FEEDBACK": str(tmp_path / "feedback.jsonl")}
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true"]
    with streamlit_server(command, port, ROOT, env, tmp_path / "streamlit.log") as url:
        yield url


@pytest.fixture
def page(server_url):
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 1000}, base_url=server_url)
        finally:
            browser.close()


def screenshot_folder(tmp_path):
    """docs/ when the README's screenshots are to be refreshed, else a temporary folder."""
    return ROOT / "docs" if os.environ.get("QA_UPDATE_SCREENSHOTS") == "1" else tmp_path


def test_answer_with_a_citation_that_opens_its_reference(page, tmp_path):
    started = time.perf_counter()
    page.goto("/")
    question_box = page.get_by_placeholder("Votre question…")
    question_box.wait_for(timeout=ANSWER_MS)
    ready = time.perf_counter()
    question_box.fill(SOLDIERS)
    question_box.press("Enter")
    reply = page.get_by_test_id("stChatMessage").last
    sync_api.expect(reply.get_by_text("2000 soldats").first).to_be_visible(timeout=ANSWER_MS)
    answered = time.perf_counter()
    print(
        f"\npage load → first answer: {answered - started:.2f} s "
        f"(page ready {ready - started:.2f} s, then the answer {answered - ready:.2f} s)"
    )

    reference = page.get_by_test_id("stPopoverBody").get_by_text(LE_POINT)
    sync_api.expect(reference).to_have_count(0)
    reply.get_by_role("button", name="[3]").click()
    sync_api.expect(reference).to_be_visible()
    sync_api.expect(page.get_by_test_id("stPopoverBody")).to_contain_text("Le Point")
    page.screenshot(path=screenshot_folder(tmp_path) / "chat.png")

    page.keyboard.press("Escape")
    page.get_by_role("tab", name="Sources").click()
    sync_api.expect(page.get_by_text("cité par 6 passages")).to_be_visible()
    page.screenshot(path=screenshot_folder(tmp_path) / "sources.png")


def test_documents_uploaded_in_the_browser_get_a_status_each_then_are_answered(index_dir, embedder, tmp_path):
    """`citeqa chat --allow-uploads`: three files picked at once, one new, one already in the corpus,
    one binary; each gets its status in the sidebar, and the new one answers."""
    settings = private_copy(tmp_path, index_dir, embedder)
    files = {"aral.md": ARAL.encode(), "copie.txt": CORPUS_FILE.read_bytes(), "photo.txt": bytes(range(256)) * 4}
    picked = []
    for name, content in files.items():
        (tmp_path / "picked").mkdir(exist_ok=True)
        (tmp_path / "picked" / name).write_bytes(content)
        picked.append(tmp_path / "picked" / name)
    port = free_port()
    env = {**os.environ, "QA_CORPUS": str(settings.corpus), "QA_INDEX": str(settings.index), "QA_JOBS": str(tmp_path / "jobs"),
           "QA_FEEDBACK": str(tmp_path / "feedback.jsonl")}
    command = [sys.executable, "-m", "qa", "chat", "--allow-uploads", "--server.port", str(port),
               "--server.address", "127.0.0.1", "--server.headless", "true"]
    with streamlit_server(command, port, ROOT, env, tmp_path / "streamlit.log") as url, sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000}, base_url=url)
            page.goto("/")
            sidebar = page.get_by_test_id("stSidebar")
            sidebar.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(picked, timeout=ANSWER_MS)
            sidebar.get_by_role("button", name="Ajouter au corpus").click()
            sync_api.expect(sidebar.get_by_text("Terminé.")).to_be_visible(timeout=ANSWER_MS)
            status = {name: sidebar.locator("p").filter(has_text=f"{name} :") for name in files}  # name, icon, status
            sync_api.expect(status["aral.md"]).to_contain_text("indexé")
            sync_api.expect(status["copie.txt"]).to_contain_text("déjà dans le corpus — the same content as relations-kazakhstan-russie.txt")
            sync_api.expect(status["photo.txt"]).to_contain_text("refusé — photo.txt: ")
            sync_api.expect(sidebar.get_by_test_id("stMetricValue").first).to_have_text("2", timeout=ANSWER_MS)  # reloaded: 2 documents
            page.screenshot(path=screenshot_folder(tmp_path) / "upload.png")
            question_box = page.get_by_placeholder("Votre question…")
            question_box.fill(ARAL_QUESTION)
            question_box.press("Enter")
            sync_api.expect(page.get_by_test_id("stChatMessage").last.get_by_text("1960").first).to_be_visible(timeout=ANSWER_MS)
        finally:
            browser.close()
    assert sorted(p.name for p in settings.corpus.iterdir()) == ["aral.md", "relations-kazakhstan-russie.txt"]
