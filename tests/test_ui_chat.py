"""Tests of the Streamlit UI (app.py over qa/chat_app.py) with the real model and a real index: no mocks.

The app reads its settings from the environment, so each test points QA_INDEX at an index
folder (the session's, or its own) and QA_FEEDBACK at a temporary file.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import time
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from conftest import BAIKONOUR_QUESTION, CORPUS_FILE, ROOT, private_copy, small_corpus
from qa.config import Settings
from qa.tools.corpus_jobs import CorpusJobs, FileStatus, Job
from qa.tools.feedback import cases_from_feedback
from qa.answer.question import question_language
from qa import chat_app as ui
from qa import chat_text

APP = str(ROOT / "app.py")
TIMEOUT = 300  # seconds per script run: the first one may convert the model and build an index
SOLDIERS = "Combien de soldats la Russie a-t-elle déployés en janvier 2022 ?"
BORDER = "How long is the border between Kazakhstan and Russia?"
NO_ANSWER_EN = "Who won the 2018 football World Cup?"
ARAL = "# Aral\n\nLa mer d'Aral, partagée entre le Kazakhstan et l'Ouzbékistan, a perdu les trois quarts de sa surface depuis 1960.\n"
ARAL_QUESTION = "Depuis quand la mer d'Aral a-t-elle perdu sa surface ?"
HOSTILE = "<script>alert(1)</script> **bold** [link](http://x) :red[x] $x$ <b>&amp;</b>"
# An article whose text, title, section and reference try to be Markdown and HTML.
HOSTILE_ARTICLE = (
    "# Article <script>alert(1)</script>\n\n## Section **grasse**\n\n"
    "Le mot <script>alert(1)</script> et **gras** et [lien](http://x) :red[x] $x$ apparaissent ici en 1999[1].\n\n"
    "## Notes et références\n\n 1. <b>Référence</b> **hostile** :red[y]\n"
)


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


def start_app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert not at.exception
    return at


@pytest.fixture
def feedback_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "feedback.jsonl"
    monkeypatch.setenv("QA_FEEDBACK", str(path))
    monkeypatch.setenv("QA_CONVERSATIONS", str(tmp_path / "conversations"))
    return path


@pytest.fixture
def app(index_dir, feedback_file, monkeypatch) -> AppTest:
    monkeypatch.setenv("QA_INDEX", str(index_dir))
    at = start_app()
    assert not at.error and not at.warning
    return at


def ask(at: AppTest, question: str):
    """Ask through the chat input; the last chat message (the reply)."""
    at.chat_input[0].set_value(question).run()
    assert not at.exception
    assert at.chat_message[-2].name == "user"
    return at.chat_message[-1]


def cue(reply) -> str:
    """The reply's first line: its confidence badge (and the no-answer message, if any)."""
    return reply.markdown[0].value


def passage_of(reply) -> str:
    """The Markdown of the reply's best passage."""
    return reply.markdown[1].value


def citations(reply) -> dict[str, tuple[str, str]]:
    """The reply's citation buttons: visible label -> (button type, visible reference text)."""
    return {
        rendered(p.proto.popover.label)[0]: (p.proto.popover.type, " ".join(rendered(m.value)[0] for m in p.markdown))
        for p in reply.get("popover")
    }


def other_passages(reply) -> list:
    """The expanders of the passages after the best one."""
    return [e for e in reply.expander if e.label.startswith(("Passage", "Possibly", "Passage peut-être"))]


def context_view(reply):
    (view,) = [e for e in reply.expander if e.label in ("Voir dans le contexte", "Show in context")]
    return view


def sidebar_button(at: AppTest, label: str):
    (button,) = [b for b in at.sidebar.button if b.label == label]
    return button


def test_french_question_is_answered_with_highlight_and_citations(app):
    reply = ask(app, SOLDIERS)
    assert reply.name == "assistant"
    confidence = int(re.search(r"confiance (\d+)%", cue(reply)).group(1))
    if confidence >= 70:  # the badge says how sure: « Réponse trouvée » from 70 %, « Réponse probable » below
        assert "Réponse trouvée" in cue(reply) and ":green-badge[" in cue(reply)
    else:
        assert "Réponse probable" in cue(reply) and ":blue-badge[" in cue(reply)
    assert "2000 soldats" in highlight_of(passage_of(reply))
    assert "2000 soldats" in rendered(passage_of(reply))[0]
    # The short answer: under the badge, and in bold inside the highlighted sentence.
    assert "Réponse : " in rendered(cue(reply))[0] and "2000" in rendered(cue(reply))[0].split("Réponse : ")[1]
    assert re.search(r"\*\*[^*]*2000[^*]*\*\*", passage_of(reply).split(":orange-background[")[1])
    assert "Relations entre le Kazakhstan et la Russie › Manifestations de 2022 au Kazakhstan" in reply.caption[0].value
    notes = citations(reply)
    assert set(notes) == {"[3]", "[4]", "[5]"}
    # The answering sentence ends with [4] (Le Monde): its button stands out; [3] is Le Point's.
    assert notes["[4]"][0] == "primary" and "Le Monde" in notes["[4]"][1]
    assert notes["[3]"][0] == "secondary" and "Le Kazakhstan en proie aux émeutes" in notes["[3]"][1]
    # The other passages are collapsed beneath, with their footnotes.
    others = other_passages(reply)
    assert len(others) == 2
    assert "Le Point" in " ".join(c.value for e in others for c in e.caption)


def test_english_question_without_answer_says_so_in_english(app):
    reply = ask(app, NO_ANSWER_EN)
    shown = rendered(cue(reply))[0]
    assert "No answer in the corpus" in shown and ":orange-badge[" in cue(reply)
    assert shown.endswith("I found no answer in the corpus.")
    assert "Possibly useful" in reply.caption[0].value
    assert len(other_passages(reply)) == 2
    assert all(e.label.startswith("Possibly useful") for e in other_passages(reply))
    assert ":orange-background[" not in passage_of(reply)  # nothing presented as the answer
    assert context_view(reply).label == "Show in context"


def test_example_questions_are_asked_when_clicked(app):
    examples = [b for b in app.button if b.label in ui.EXAMPLES]
    assert len(examples) == len(ui.EXAMPLES) >= 2
    assert {question_language(q) for q in ui.EXAMPLES} == {"fr", "en"}
    next(b for b in examples if b.label == BORDER).click().run()
    assert not app.exception
    assert [m.name for m in app.chat_message] == ["user", "assistant"]
    reply = app.chat_message[-1]
    assert "Answer found" in cue(reply)
    assert "6 846\xa0km" in highlight_of(passage_of(reply))
    assert not [b for b in app.button if b.label in ui.EXAMPLES]  # examples only start a conversation


def test_clear_conversation_empties_the_chat(app):
    assert sidebar_button(app, "Effacer la conversation").disabled
    ask(app, SOLDIERS)
    ask(app, BORDER)
    assert len(app.chat_message) == 4
    sidebar_button(app, "Clear the conversation").click().run()  # the latest question is English
    assert not app.chat_message and not app.session_state["messages"]
    assert [b for b in app.button if b.label in ui.EXAMPLES]


def test_show_in_context_marks_the_passage_among_its_neighbours(app, engine):
    reply = ask(app, SOLDIERS)
    view = context_view(reply)
    first = engine.ask(SOLDIERS).passages[0].passage
    neighbours = engine.store.neighbours(first)
    assert len(neighbours) == 3
    shown = [rendered(m.value)[0] for m in view.markdown]
    assert (shown[0], shown[2]) == (neighbours[0].text, neighbours[2].text)
    marked = [c.value for c in view.caption if c.value.startswith("▶")]
    assert marked == ["▶ Ce passage · Manifestations de 2022 au Kazakhstan"]
    assert "2000 soldats" in highlight_of(view.markdown[1].value)


def test_number_of_passages_follows_the_slider(app):
    assert app.sidebar.slider(key="k").value == 3
    app.sidebar.slider(key="k").set_value(5).run()
    reply = ask(app, SOLDIERS)
    assert len(other_passages(reply)) == 4


def test_sources_tab_lists_references_with_citation_counts(app, engine):
    assert [t.label for t in app.tabs] == ["Conversation", "Sources"]
    sources = app.tabs[1]
    (doc_id, document), = engine.store.documents.items()
    assert sources.subheader[0].value == chat_text.escape_markdown(document.title)
    lines = rendered(sources.markdown[0].value)[0].splitlines()
    counts = engine.store.citation_counts(doc_id)
    assert len(lines) == len(counts) == 13
    assert lines[0].startswith("[1] Claude Moniquet") and lines[0].endswith("cité par 6 passages]")
    assert lines[2].startswith("[3] «\xa0Le Kazakhstan en proie aux émeutes") and lines[2].endswith("cité par 1 passage]")


def test_sidebar_shows_the_index_status_and_model(app, engine):
    documents, passages = app.sidebar.metric
    assert (documents.label, documents.value) == ("Documents", "1")
    assert (passages.label, passages.value) == ("Passages", str(engine.store.manifest.passages))
    captions = " ".join(c.value for c in app.sidebar.caption)
    assert "À jour avec le corpus" in captions
    assert "Construit le" in captions
    assert chat_text.escape_markdown(engine.settings.model) in captions


def test_rebuild_button_reports_what_was_reused(index_dir, feedback_file, tmp_path, monkeypatch):
    copy = tmp_path / "index"
    shutil.copytree(index_dir, copy)
    monkeypatch.setenv("QA_INDEX", str(copy))
    monkeypatch.setenv("QA_CHAT_UPLOADS", "1")
    at = start_app()
    sidebar_button(at, "Reconstruire l'index").click().run()
    assert not at.exception and not at.error
    report = rendered(at.sidebar.success[0].value)[0]
    assert re.search(r"Index construit en [\d.]+ s : 32 passages, 0 textes encodés, \d+ réutilisés\.", report), report
    reply = ask(at, SOLDIERS)  # the rebuilt index answers
    assert "2000 soldats" in highlight_of(passage_of(reply))


def test_a_failed_rebuild_says_why_and_keeps_the_index(index_dir, feedback_file, tmp_path, monkeypatch):
    copy = tmp_path / "index"
    shutil.copytree(index_dir, copy)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("QA_INDEX", str(copy))
    monkeypatch.setenv("QA_CORPUS", str(tmp_path / "empty"))
    monkeypatch.setenv("QA_CHAT_UPLOADS", "1")
    at = start_app()
    assert "relations-kazakhstan-russie.txt removed" in rendered(at.sidebar.warning[0].value)[0]
    current = (copy / "CURRENT").read_text("utf-8")
    sidebar_button(at, "Reconstruire l'index").click().run()
    assert not at.exception
    assert "no passages" in rendered(at.sidebar.error[0].value)[0]
    assert (copy / "CURRENT").read_text("utf-8") == current
    assert "2000 soldats" in highlight_of(passage_of(ask(at, SOLDIERS)))


def test_without_uploads_allowed_the_chat_cannot_change_the_corpus(app):
    labels = [b.label for b in app.button]
    assert "Reconstruire l'index" not in labels and "Ajouter au corpus" not in labels and not app.get("file_uploader")


def test_documents_uploaded_from_the_chat_get_a_status_each_then_are_answered_and_removed(index_dir, embedder, feedback_file,
                                                                                          tmp_path, monkeypatch):
    settings = private_copy(tmp_path, index_dir, embedder)
    for name, value in {"QA_CORPUS": settings.corpus, "QA_INDEX": settings.index, "QA_JOBS": tmp_path / "jobs", "QA_CHAT_UPLOADS": "1"}.items():
        monkeypatch.setenv(name, str(value))
    at = start_app()
    at.sidebar.get("file_uploader")[0].set_value([("aral.md", ARAL.encode(), "text/markdown"),
                                                  ("copie.txt", CORPUS_FILE.read_bytes(), "text/plain"),
                                                  ("photo.txt", bytes(range(256)) * 4, "text/plain")]).run()
    sidebar_button(at, "Ajouter au corpus").click().run()
    finished(at, Settings.from_env())
    lines = file_lines(at)
    assert "indexé" in lines["aral.md"] and "déjà dans le corpus" in lines["copie.txt"] and "relations-kazakhstan-russie.txt" in lines["copie.txt"]
    assert "refusé" in lines["photo.txt"] and "photo.txt: " in lines["photo.txt"]
    assert sorted(p.name for p in settings.corpus.iterdir()) == ["aral.md", "relations-kazakhstan-russie.txt"]
    assert "1960" in highlight_of(passage_of(ask(at, ARAL_QUESTION)))
    (removal,) = [s for s in at.sidebar.selectbox if s.label == "Retirer un document"]
    removal.set_value("Aral").run()
    sidebar_button(at, "Retirer du corpus").click().run()
    finished(at, Settings.from_env())
    assert "retiré" in file_lines(at)["aral.md"]
    assert sorted(p.name for p in settings.corpus.iterdir()) == ["relations-kazakhstan-russie.txt"]
    assert [s.options for s in at.sidebar.selectbox if s.label == "Retirer un document"] == [["Relations entre le Kazakhstan et la Russie"]]


def test_upload_statuses_show_hostile_file_names_and_reasons_as_text():
    name, reason = "<script>alert(1)</script>**x**.md", "[lien](http://x) :red[y] <b>z</b>"
    text, tags = rendered(chat_text.file_status_line(FileStatus(name, "refused", reason)))
    assert tags == {"p"} and text.startswith(f"{name} : ") and text.endswith(f"refusé] — {reason}")
    failed = Job("0" * 32, "upload", [], state="failed", message="<img src=x onerror=alert(1)>")
    assert chat_text.job_progress(failed)[0] == 1.0 and rendered(chat_text.job_progress(failed)[1]) == (
        "Échec de la reconstruction : <img src=x onerror=alert(1)> — l'index en service est inchangé.", {"p"})


def finished(at: AppTest, settings: Settings, seconds: float = 180) -> None:
    """Wait for the session's latest upload or removal to finish, then run the page again."""
    jobs, job_id = CorpusJobs(settings, load_embedder=lambda: None), at.session_state[ui.CORPUS_JOB]
    deadline = time.monotonic() + seconds
    while not jobs.get(job_id).finished:
        assert time.monotonic() < deadline, jobs.get(job_id)
        time.sleep(0.3)
    at.run()
    assert not at.exception


def file_lines(at: AppTest) -> dict[str, str]:
    """The sidebar's file status lines, visible text by file name."""
    lines = [rendered(c.value)[0] for c in at.sidebar.caption]
    return {line.split(" : ", 1)[0]: line for line in lines if " : " in line}


def test_votes_are_appended_to_the_feedback_file(app, feedback_file):
    ask(app, SOLDIERS)
    ask(app, NO_ANSWER_EN)
    app.feedback[0].set_value(1).run()
    app.feedback[1].set_value(0).run()
    assert not app.exception
    assert "Thank you" in app.toast[0].value
    soldiers, world_cup = [json.loads(line) for line in feedback_file.read_text("utf-8").splitlines()]
    assert soldiers["question"] == SOLDIERS and soldiers["vote"] == "up" and soldiers["lang"] == "fr"
    assert "2000 soldats" in soldiers["answer_sentence"]
    assert soldiers["passage_ids"][0] == "relations-kazakhstan-russie:s3p0c0" and len(soldiers["passage_ids"]) == 3
    assert world_cup["vote"] == "down" and world_cup["answered"] is False
    (case,) = cases_from_feedback(feedback_file)
    assert case == {"question": SOLDIERS, "answer": soldiers["answer_sentence"], "footnotes": [], "lang": "fr", "kind": "feedback"}


def test_export_lists_questions_answers_passages_and_footnotes(app):
    assert app.sidebar.download_button[0].disabled
    ask(app, SOLDIERS)
    ask(app, NO_ANSWER_EN)
    assert not app.sidebar.download_button[0].disabled
    messages = app.session_state["messages"]
    answers = [m["answer"] for m in messages if "answer" in m]
    markdown = chat_text.conversation_markdown(messages)
    shown, tags = rendered(markdown)
    assert tags <= {"h1", "h2", "p", "strong", "em", "blockquote", "ul", "li", "br"}, tags
    assert f"1. {SOLDIERS}" in shown and f"2. {NO_ANSWER_EN}" in shown
    assert f"Réponse : {answers[0].answer_text}" in shown and "2000" in answers[0].answer_text
    assert f"Phrase : {answers[0].answer_sentence}" in shown
    assert f"confiance {answers[0].confidence:.0%}" in shown and f"confidence {answers[1].confidence:.0%}" in shown
    assert "Source : Relations entre le Kazakhstan et la Russie › Manifestations de 2022 au Kazakhstan" in shown
    assert "[3] «\xa0Le Kazakhstan en proie aux émeutes" in shown and "Le Monde" in shown
    assert "I found no answer in the corpus." in shown and "Possibly useful passage:" in shown
    # Readable as plain text: the corpus's brackets, dots and dashes are not escaped.
    assert f"**Phrase** : {answers[0].answer_sentence}" in markdown and "[3] «" in markdown


def test_bad_questions_show_an_error_and_the_chat_goes_on(app):
    reply = ask(app, "   ")
    assert "Question refusée : la question est vide" in rendered(reply.error[0].value)[0]
    reply = ask(app, "Pourquoi ? " * 120)
    assert "Question refusée : la question fait 1319 caractères ; la limite est 1000" in rendered(reply.error[0].value)[0]
    reply = ask(app, "Why? " * 250)  # refused in the question's language, not half French
    assert "Question refused: the question is 1249 characters long; the limit is 1000" in rendered(reply.error[0].value)[0]
    reply = ask(app, SOLDIERS)  # the chat still works, and the history is kept
    assert "2000 soldats" in highlight_of(passage_of(reply))
    assert len(app.chat_message) == 8
    assert len(app.session_state["messages"]) == 8


@pytest.mark.parametrize(
    "text",
    [HOSTILE, "# titre\n- puce\n1. un\n> cité\n    code\n===\n", "a\\b `c` _d_ ~~e~~ | f | www.example.com x@y.fr ![i](j)"],
)
def test_escape_markdown_shows_text_literally(text):
    shown, tags = rendered(chat_text.escape_markdown(text))
    assert tags <= {"p", "br"}, tags
    assert shown == "\n".join(line.strip() for line in text.splitlines() if line.strip())


def test_highlight_escapes_the_sentence_and_its_surroundings():
    text = f"Avant {HOSTILE}. La phrase [3] **gras**. Après <i>x</i>."
    start = text.index("La phrase")
    end = text.index("Après") - 1
    markdown = chat_text.highlighted(text, (start, end))
    assert highlight_of(markdown) == "La phrase [3] **gras**."
    shown, tags = rendered(markdown)
    assert tags == {"p"}
    assert shown == text[:start] + ":orange-background[" + text[start:end] + "]" + text[end:]
    assert chat_text.highlighted(text, None) == chat_text.escape_markdown(text)
    answer = (text.index("[3]"), text.index("[3]") + 3)
    bold = chat_text.highlighted(text, (start, end), answer)
    assert highlight_of(bold) == "La phrase [3] **gras**." and rendered(bold)[1] == {"p", "strong"}
    assert "<strong>[3]</strong>" in _markdown.render(bold)


def test_hostile_question_reaches_the_page_escaped(app):
    ask(app, HOSTILE)
    question = app.chat_message[0].markdown[0].value
    assert question == chat_text.escape_markdown(HOSTILE)
    assert "\\<script\\>alert\\(1\\)\\</script\\>" in question
    assert rendered(question)[0] == HOSTILE
    assert "unsafe_allow_html" not in Path(APP).read_text("utf-8")


def test_hostile_corpus_text_is_shown_as_text(tmp_path, feedback_file, monkeypatch):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "hostile.md").write_text(HOSTILE_ARTICLE, "utf-8")
    monkeypatch.setenv("QA_CORPUS", str(corpus))
    monkeypatch.setenv("QA_INDEX", str(tmp_path / "index"))
    at = start_app()
    reply = ask(at, "En quelle année le mot apparaît-il ?")
    sentence = "Le mot <script>alert(1)</script> et **gras** et [lien](http://x) :red[x] $x$ apparaissent ici en 1999[1]."
    assert highlight_of(passage_of(reply)) == sentence
    # the only markup is citeqa's own bold around the short answer, whose text stays escaped
    assert rendered(passage_of(reply))[1] <= {"p", "strong"}
    short = at.session_state["messages"][-1]["answer"].answer_text
    assert re.findall(r"<strong>(.*?)</strong>", _markdown.render(passage_of(reply))) in ([], [html.escape(short)])
    assert "Article <script>alert(1)</script> › Section **grasse**" == rendered(reply.caption[0].value)[0].split(" · ", 1)[1]
    assert citations(reply)["[1]"][1] == "<b>Référence</b> **hostile** :red[y]"
    sources = rendered(at.tabs[1].markdown[0].value)[0]
    assert sources.startswith("[1] <b>Référence</b> **hostile** :red[y]")


def small_corpus_for_the_app(tmp_path, monkeypatch) -> Settings:
    """The app on conftest's corpus of one paragraph and an empty index folder: for the tests of a
    build from scratch, which takes a moment on it (some 20 s on the bundled article)."""
    settings = small_corpus(tmp_path)
    monkeypatch.setenv("QA_CORPUS", str(settings.corpus))
    monkeypatch.setenv("QA_INDEX", str(settings.index))
    return settings


def test_missing_index_is_built_then_used(tmp_path, feedback_file, monkeypatch):
    index = small_corpus_for_the_app(tmp_path, monkeypatch).index
    at = start_app()
    assert not at.error
    assert "Index construit" in at.success[0].value
    assert (index / "CURRENT").is_file()
    reply = ask(at, BAIKONOUR_QUESTION)
    assert "2050" in highlight_of(passage_of(reply))


def test_unusable_index_offers_a_rebuild_that_fixes_it(tmp_path, feedback_file, monkeypatch):
    index = small_corpus_for_the_app(tmp_path, monkeypatch).index
    (index / "CURRENT").write_text("build-gone", "utf-8")
    monkeypatch.setenv("QA_CHAT_UPLOADS", "1")
    at = start_app()
    assert "build-gone, which is missing" in rendered(at.error[0].value)[0]
    assert at.button[0].label == "Reconstruire l'index"
    assert not at.chat_input  # the page stops: no chat on an unusable index
    at.button[0].click().run()
    assert not at.exception and not at.error
    assert (index / "CURRENT").read_text("utf-8").startswith("build-2")
    reply = ask(at, BAIKONOUR_QUESTION)
    assert "2050" in highlight_of(passage_of(reply))


def test_stale_index_warns_with_the_reasons(index_dir, feedback_file, monkeypatch):
    monkeypatch.setenv("QA_INDEX", str(index_dir))
    monkeypatch.setenv("QA_CHUNK_SIZE", "300")
    at = start_app()
    assert "splitting settings changed" in rendered(at.sidebar.warning[0].value)[0]
    assert at.chat_input  # still usable


WHAT_FOR = "pour faire quoi ?"


def understood(reply) -> list[str]:
    return [c.value for c in reply.caption if c.value.startswith(("Compris comme", "Understood as"))]


def test_a_follow_up_is_understood_from_the_conversation_until_a_new_topic(app):
    assert understood(ask(app, SOLDIERS)) == []  # a question that stands alone: nothing shown
    reply = ask(app, WHAT_FOR)
    (line,) = understood(reply)
    assert line.startswith("Compris comme : pour faire quoi ?") and "soldats" in line
    assert "réprimer la révolte" in highlight_of(passage_of(reply))
    sidebar_button(app, "Nouveau sujet").click().run()
    assert sidebar_button(app, "Nouveau sujet").disabled  # nothing asked since
    assert understood(ask(app, WHAT_FOR)) == []  # read alone again


def test_why_this_passage_shows_the_terms_and_the_scores(app):
    reply = ask(app, SOLDIERS)
    (why,) = [e for e in reply.expander if e.label == "Pourquoi ce passage ?"]
    text = why.markdown[0].value
    assert ":blue-background[soldats]" in text and ":blue-background[janvier]" in text
    shown = rendered(text)[0]
    assert re.search(r"Sémantique \(dense\) 0\.\d+ \(rang 1\)", shown) and "Lexical (BM25) 1.00 (rang 1)" in shown
    assert "Lecteur" in shown


def test_an_english_question_gets_english_words(app):
    reply = ask(app, BORDER)
    assert "Answer found" in cue(reply) or "Likely answer" in cue(reply)
    assert "\nAnswer: 6" in rendered(cue(reply))[0]  # English punctuation: no space before the colon
    assert app.chat_input[0].placeholder == "Your question…"
    assert sidebar_button(app, "New topic") and sidebar_button(app, "Clear the conversation")
    assert [t.label for t in app.tabs] == ["Conversation", "Sources"]
    assert [e for e in reply.expander if e.label == "Why this passage?"]


def test_the_conversation_survives_a_reload(app, tmp_path):
    ask(app, SOLDIERS)
    ask(app, WHAT_FOR)
    conversation = app.query_params["conversation"]
    assert (tmp_path / "conversations" / f"{conversation}.json").is_file()
    reloaded = AppTest.from_file(APP, default_timeout=TIMEOUT)
    reloaded.query_params["conversation"] = conversation
    reloaded.run()
    assert not reloaded.exception
    assert [rendered(m.markdown[0].value)[0] for m in reloaded.chat_message if m.name == "user"] == [SOLDIERS, WHAT_FOR]
    assert understood(reloaded.chat_message[-1]) == understood(app.chat_message[-1]) != []
    bad = AppTest.from_file(APP, default_timeout=TIMEOUT)
    bad.query_params["conversation"] = "../../etc/passwd"
    bad.run()
    assert not bad.exception and not bad.chat_message and "not a conversation id" in bad.warning[0].value


def test_an_english_conversation_is_reloaded_in_english(app):
    ask(app, BORDER)
    reloaded = AppTest.from_file(APP, default_timeout=TIMEOUT)
    reloaded.query_params["conversation"] = app.query_params["conversation"]
    reloaded.run()
    assert not reloaded.exception
    assert reloaded.chat_input[0].placeholder == "Your question…"  # not the French of a page with no question yet
    assert reloaded.caption[0].value == chat_text.LABELS["en"]["intro"]
    assert [rendered(m.markdown[0].value)[0] for m in reloaded.chat_message if m.name == "user"] == [BORDER]


def test_the_export_keeps_understood_questions_and_refusals_and_reads_as_plain_text(engine):
    first = engine.ask(SOLDIERS)
    follow_up = engine.ask(WHAT_FOR, history=[first.as_turn()])
    messages = [{"role": "user", "content": SOLDIERS}, {"role": "assistant", "answer": first},
                {"role": "user", "content": WHAT_FOR}, {"role": "assistant", "answer": follow_up},
                {"role": "topic"},
                {"role": "user", "content": "   "}, {"role": "assistant", "error": "Question refusée : la question est vide"}]
    markdown = chat_text.conversation_markdown(messages)
    shown, _ = rendered(markdown)
    assert f"Compris comme : {follow_up.understood_as}" in shown
    assert "Question refusée : la question est vide" in shown and "3." in shown
    assert f"(confiance {follow_up.confidence:.0%})" in shown
    assert f"**Phrase** : {first.answer_sentence}" in markdown  # no backslash before the corpus's [ . -
    assert "\\" not in markdown.split("> ")[1].split("\n")[0]
