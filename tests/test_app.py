"""Tests of the Streamlit UI (app.py) with the real model and a real index: no mocks.

The app reads its settings from the environment, so each test points QA_INDEX at a temporary
index folder. The index is built once per session; the test of a missing index builds its own.
"""

from __future__ import annotations

import html
import importlib.util
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from conftest import ROOT

APP = str(ROOT / "app.py")
TIMEOUT = 300  # seconds per script run: the first one may convert the model and build an index
SOLDIERS = "Combien de soldats la Russie a-t-elle déployés en janvier 2022 ?"
HOSTILE = "<script>alert(1)</script> **bold** [link](http://x) :red[x] $x$ <b>&amp;</b>"


def load_app_module():
    """app.py imported as a module (its main() only runs under Streamlit)."""
    spec = importlib.util.spec_from_file_location("citeqa_app", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ui = load_app_module()
_markdown = MarkdownIt("commonmark").enable(["strikethrough", "table"])


def rendered(markdown: str) -> tuple[str, set[str]]:
    """What a CommonMark renderer shows for ``markdown``: its visible text and the HTML tags it makes."""
    out = _markdown.render(markdown)
    tags = set(re.findall(r"<(\w+)", out))
    return html.unescape(re.sub(r"<[^>]+>", "", out)).strip(), tags


def highlight_of(markdown: str) -> str:
    """The visible text of the part of ``markdown`` inside :orange-background[...]."""
    match = re.search(r":orange-background\[((?:\\.|[^\\\]])*)\]", markdown)
    assert match, f"no highlight in {markdown!r}"
    return rendered(match.group(1))[0]


@pytest.fixture
def app(index_dir, monkeypatch) -> AppTest:
    monkeypatch.setenv("QA_INDEX", str(index_dir))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert not at.error and not at.warning
    return at


def ask(at: AppTest, question: str):
    """Ask through the chat input; the last chat message (the reply)."""
    at.chat_input[0].set_value(question).run()
    assert not at.exception
    assert at.chat_message[-2].name == "user"
    return at.chat_message[-1]


def citations(reply) -> dict[str, str]:
    """The reply's citation expanders: label -> visible reference text."""
    return {
        rendered(e.label)[0]: " ".join(rendered(m.value)[0] for m in e.markdown)
        for e in reply.expander
        if e.label.startswith("\\[")
    }


def test_french_question_is_answered_with_highlight_and_citations(app):
    reply = ask(app, SOLDIERS)
    assert reply.name == "assistant"
    passage = reply.markdown[0].value
    assert "2000 soldats" in highlight_of(passage)
    assert "2000 soldats" in rendered(passage)[0]
    assert "Manifestations de 2022 au Kazakhstan" in reply.caption[0].value
    assert "Relations entre le Kazakhstan et la Russie" in reply.caption[0].value
    assert "score" in reply.caption[0].value
    notes = citations(reply)
    # The answering sentence ends with [4], whose reference is a Le Monde article.
    assert any(label.startswith("[4]") and "Le Monde" in text for label, text in notes.items()), notes
    assert all(text for text in notes.values())
    # The other passages are collapsed beneath, with their footnotes.
    others = [e for e in reply.expander if not e.label.startswith("\\[")]
    assert len(others) == 2
    assert "Le Point" in " ".join(c.value for e in others for c in e.caption)
    assert "Je n'ai pas trouvé" not in " ".join(m.value for m in reply.markdown)


def test_english_question_without_answer_says_so(app):
    reply = ask(app, "Who won the 2018 football World Cup?")
    assert rendered(reply.markdown[0].value)[0] == "I found no answer in the corpus."
    assert "Possibly useful" in reply.caption[0].value
    assert all("Possibly useful" in e.label for e in reply.expander if not e.label.startswith("\\["))
    assert ":orange-background[" not in reply.markdown[1].value  # nothing presented as the answer


def test_bad_questions_show_an_error_and_the_chat_goes_on(app):
    reply = ask(app, "   ")
    assert "empty" in reply.error[0].value
    reply = ask(app, "Pourquoi ? " * 120)
    assert "1000" in reply.error[0].value
    reply = ask(app, SOLDIERS)  # the chat still works, and the history is kept
    assert "2000 soldats" in highlight_of(reply.markdown[0].value)
    assert len(app.chat_message) == 6
    assert len(app.session_state["messages"]) == 6


@pytest.mark.parametrize(
    "text",
    [HOSTILE, "# titre\n- puce\n1. un\n> cité\n    code\n===\n", "a\\b `c` _d_ ~~e~~ | f | www.example.com x@y.fr ![i](j)"],
)
def test_escape_markdown_shows_text_literally(text):
    shown, tags = rendered(ui.escape_markdown(text))
    assert tags <= {"p", "br"}, tags
    assert shown == "\n".join(line.strip() for line in text.splitlines() if line.strip())


def test_highlight_escapes_the_sentence_and_its_surroundings():
    text = f"Avant {HOSTILE}. La phrase [3] **gras**. Après <i>x</i>."
    start = text.index("La phrase")
    end = text.index("Après") - 1
    markdown = ui.highlighted(text, (start, end))
    assert highlight_of(markdown) == "La phrase [3] **gras**."
    shown, tags = rendered(markdown)
    assert tags == {"p"}
    assert shown == text[:start] + ":orange-background[" + text[start:end] + "]" + text[end:]
    assert ui.highlighted(text, None) == ui.escape_markdown(text)


def test_hostile_text_reaches_the_page_escaped(app):
    ask(app, HOSTILE)
    question = app.chat_message[0].markdown[0].value
    assert question == ui.escape_markdown(HOSTILE)
    assert "\\<script\\>alert\\(1\\)\\</script\\>" in question
    assert rendered(question)[0] == HOSTILE
    assert "unsafe_allow_html" not in Path(APP).read_text("utf-8")


def test_missing_index_is_built_then_used(tmp_path, monkeypatch):
    monkeypatch.setenv("QA_INDEX", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception and not at.error
    assert "Index construit" in at.success[0].value
    assert (tmp_path / "CURRENT").is_file()
    reply = ask(at, SOLDIERS)
    assert "2000 soldats" in highlight_of(reply.markdown[0].value)


def test_unusable_index_offers_a_rebuild_that_fixes_it(tmp_path, monkeypatch):
    (tmp_path / "CURRENT").write_text("build-gone", "utf-8")
    monkeypatch.setenv("QA_INDEX", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "build-gone, which is missing" in rendered(at.error[0].value)[0]
    assert at.button[0].label == "Reconstruire l'index"
    assert not at.chat_input  # the page stops: no chat on an unusable index
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert (tmp_path / "CURRENT").read_text("utf-8").startswith("build-2")
    reply = ask(at, SOLDIERS)
    assert "2000 soldats" in highlight_of(reply.markdown[0].value)


def test_stale_index_warns_with_the_reasons(index_dir, monkeypatch):
    monkeypatch.setenv("QA_INDEX", str(index_dir))
    monkeypatch.setenv("QA_CHUNK_SIZE", "300")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    assert "splitting settings changed" in rendered(at.warning[0].value)[0]
    assert at.chat_input  # still usable
