"""The chat in a real browser: `streamlit run app.py` on the test index, driven by Chromium.

Asks a question, opens a citation, uploads documents, follows a conversation, explains a match,
reloads the page, and takes screenshots; with QA_UPDATE_SCREENSHOTS=1 they replace the README's
(docs/chat.png, docs/sources.png, docs/upload.png, docs/conversation.png, docs/explain.png,
docs/english.png, docs/reload.png), otherwise they go to the test's tmp folder. Skipped when
Debian's chromium (apt package `chromium`) is not installed.
"""

from __future__ import annotations

import os
import re
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
WHAT_FOR = "pour faire quoi ?"
THANKED_WHEN = "et Tokaïev les a remerciés quand ?"  # kz-d07: « le 10 février »
PUTIN = ("When did Vladimir Putin travel to Astana?", "what did he do there", "which paper reported it?")
FRENCH_WORDS = ("Compris comme", "Pourquoi ce passage", "Réponse", "Voir dans le contexte", "Nouveau sujet", "Posez une question")
LE_POINT = "Le Kazakhstan en proie aux émeutes"
ARAL = "# Aral\n\nLa mer d'Aral, partagée entre le Kazakhstan et l'Ouzbékistan, a perdu les trois quarts de sa surface depuis 1960.\n"
ARAL_QUESTION = "Depuis quand la mer d'Aral a-t-elle perdu sa surface ?"

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (apt install chromium)")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


@pytest.fixture
def server_url(index_dir, tmp_path):
    """A `streamlit run app.py` on the test index (votes go to a temporary file), stopped afterwards."""
    port = free_port()
    env = {**os.environ, "QA_INDEX": str(index_dir), "QA_FEEDBACK": str(tmp_path / "feedback.jsonl"),
           "QA_CONVERSATIONS": str(tmp_path / "conversations")}
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


def ask(page, question: str):
    """Type ``question`` in the chat box; its reply once drawn (the page's last message)."""
    replies = page.get_by_test_id("stChatMessage").filter(has=page.get_by_test_id("stChatMessageAvatarAssistant"))
    asked = replies.count()
    question_box = page.get_by_test_id("stChatInputTextArea")
    question_box.fill(question, timeout=ANSWER_MS)
    question_box.press("Enter")
    sync_api.expect(replies).to_have_count(asked + 1, timeout=ANSWER_MS)
    reply = replies.nth(asked)
    sync_api.expect(reply.get_by_test_id("stFeedback")).to_be_visible()  # drawn to its end
    return reply


def understood(reply, label: str):
    """The reply's « Compris comme : … » / "Understood as: …" line (none when the question was read alone)."""
    return reply.get_by_test_id("stCaptionContainer").filter(has_text=re.compile(f"^{label}"))


def highlighted_sentence(reply) -> str:
    """The answering sentence, highlighted in the reply's best passage."""
    return reply.locator(".stMarkdownColoredBackground").first.inner_text()


def settled_box(page, locator) -> dict:
    """The locator's bounding box once it stops moving (an expander opens with an animation)."""
    previous, box = None, locator.bounding_box()
    while box != previous:
        page.wait_for_timeout(200)
        previous, box = box, locator.bounding_box()
    return box


def screenshot_of_everything(page, path: Path, *parts, margin: int = 12) -> None:
    """A screenshot of the whole conversation, or only of ``parts`` (locators), however tall: the
    window is made as tall as the content (Streamlit scrolls its main area, so full_page would not)."""
    size = page.viewport_size
    settled_box(page, page.get_by_test_id("stMainBlockContainer"))
    hidden = page.get_by_test_id("stAppScrollToBottomContainer").evaluate("main => main.scrollHeight - main.clientHeight")
    page.set_viewport_size({**size, "height": size["height"] + hidden})
    try:
        clip = None
        if parts:
            boxes = [settled_box(page, part) for part in parts]
            left, top = min(b["x"] for b in boxes) - margin, min(b["y"] for b in boxes) - margin
            right = max(b["x"] + b["width"] for b in boxes) + margin
            bottom = max(b["y"] + b["height"] for b in boxes) + margin
            clip = {"x": left, "y": top, "width": right - left, "height": bottom - top}
        page.screenshot(path=path, clip=clip)
    finally:
        page.set_viewport_size(size)


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


def test_a_follow_up_is_understood_from_the_conversation_and_a_match_explained(page, tmp_path):
    """Three turns in French: the follow-ups are completed from the first question, said under
    them, and answered by the sentence that says it; the first passage explained."""
    page.goto("/")
    first = ask(page, SOLDIERS)
    sync_api.expect(understood(first, "Compris comme")).to_have_count(0)  # a question that stands alone
    what_for = ask(page, WHAT_FOR)
    sync_api.expect(understood(what_for, "Compris comme : ")).to_have_count(1)
    assert "réprimer la révolte" in highlighted_sentence(what_for)
    thanked = ask(page, THANKED_WHEN)
    sync_api.expect(understood(thanked, "Compris comme : ")).to_have_count(1)
    assert "le 10 février" in highlighted_sentence(thanked)
    screenshot_of_everything(page, screenshot_folder(tmp_path) / "conversation.png")

    why = first.get_by_test_id("stExpander").filter(has=page.locator("summary", has_text="Pourquoi ce passage ?"))
    why.locator("summary").click()
    panel = why.get_by_test_id("stExpanderDetails")
    sync_api.expect(panel).to_contain_text("Termes de la question trouvés :")
    terms = panel.locator(".stMarkdownColoredBackground").all_inner_texts()  # the question's words, highlighted in the passage
    assert {"soldats", "janvier", "2022"} <= {t.strip() for t in terms}, terms
    sync_api.expect(panel).to_contain_text(re.compile(r"Sémantique \(dense\) 0\.\d{3} \(rang \d+\) · Lexical \(BM25\) \d\.\d\d \(rang \d+\)"))
    sync_api.expect(panel).to_contain_text(re.compile(r"Lecteur [+-]\d\.\d\d"))
    user_messages = page.get_by_test_id("stChatMessage").filter(has=page.get_by_test_id("stChatMessageAvatarUser"))
    screenshot_of_everything(page, screenshot_folder(tmp_path) / "explain.png", user_messages.first, first)


def test_an_english_conversation_in_english_words_is_the_same_after_a_reload(page, tmp_path):
    """Asked in English, the chat's words are English (the article's text stays French); the
    conversation, kept under the id in the URL, is shown again after the page is reloaded."""
    page.goto("/")
    replies = [ask(page, question) for question in PUTIN]
    assert "novembre 2023" in highlighted_sentence(replies[0])
    sync_api.expect(understood(replies[0], "Understood as")).to_have_count(0)
    for follow_up in replies[1:]:
        sync_api.expect(understood(follow_up, "Understood as: ")).to_have_count(1)
    for reply in replies:  # answered or not, in English (which follow-ups are answered is measured by qa eval)
        sync_api.expect(reply).to_contain_text(re.compile("Answer: |I found no answer in the corpus"))
    for label in ("Why this passage?", "Show in context"):
        sync_api.expect(replies[0].get_by_text(label, exact=True).first).to_be_visible()
    sync_api.expect(page.get_by_role("tab", name="Conversation")).to_be_visible()
    sync_api.expect(page.get_by_placeholder("Your question…")).to_be_visible()
    sync_api.expect(page.get_by_test_id("stSidebar").get_by_role("button", name="New topic")).to_be_visible()
    main = page.locator("#stMain")  # the page but its sidebar, whose index status and settings stay French
    sync_api.expect(main.get_by_text(re.compile("^Understood as: "))).to_have_count(2)
    for word in FRENCH_WORDS:
        sync_api.expect(main.get_by_text(re.compile(word))).to_have_count(0)
    screenshot_of_everything(page, screenshot_folder(tmp_path) / "english.png")

    conversation = re.search(r"[?&]conversation=(\w+)", page.url).group(1)
    assert (tmp_path / "conversations" / f"{conversation}.json").is_file()
    messages = page.get_by_test_id("stChatMessage")
    before = messages.all_inner_texts()
    page.reload()
    sync_api.expect(messages).to_have_count(len(before), timeout=ANSWER_MS)
    sync_api.expect(messages.last.get_by_test_id("stFeedback")).to_be_visible()
    assert messages.all_inner_texts() == before  # the same questions, understood and answered the same
    assert f"conversation={conversation}" in page.url
    sync_api.expect(page.get_by_placeholder("Your question…")).to_be_visible()  # the page's own words follow it
    screenshot_of_everything(page, screenshot_folder(tmp_path) / "reload.png")
