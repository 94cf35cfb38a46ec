"""citeqa chat UI: ask the corpus a question, see the sentence that answers, in its passage, with its sources.

Run with ``streamlit run app.py``. This file only draws; every decision is made in ``qa``.
Corpus text is never trusted as Markdown or HTML: it always goes through ``escape_markdown``.
"""

from __future__ import annotations

import re
import threading

import streamlit as st

from qa.answer import Answer, AnswerPassage, QuestionError
from qa.config import Settings
from qa.engine import Engine, build, open_engine
from qa.index import IndexUnusableError, MissingIndexError
from qa.model import ModelLoadError, load_embedder

# Markdown's special characters, plus those of GFM autolinks (: @ .), setext headings (=),
# HTML entities (&) and Streamlit's own syntax (:color[...], :material/...:, $math$).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=&@^])")
_LINE_BREAKS = re.compile(r"[ \t]*(?:\r\n|\r|\n)\s*")
LABELS = {
    "fr": {"source": "Source", "maybe": "Passage peut-être utile", "missing": "Référence absente de l'article."},
    "en": {"source": "Source", "maybe": "Possibly useful passage", "missing": "Reference missing from the article."},
}


def escape_markdown(text: str) -> str:
    """``text`` as Markdown that displays literally: punctuation escaped, line breaks kept as hard breaks."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return _LINE_BREAKS.sub("  \n", escaped)


def highlighted(text: str, span: tuple[int, int] | None) -> str:
    """``text`` escaped for Markdown, with the characters in ``span`` (if any) highlighted."""
    if span is None:
        return escape_markdown(text)
    start, end = span
    before, sentence, after = text[:start], text[start:end], text[end:]
    return f"{escape_markdown(before)}:orange-background[{escape_markdown(sentence)}]{escape_markdown(after)}"


# --- loading -------------------------------------------------------------------------------


@st.cache_resource(show_spinner="Chargement du modèle…")
def get_embedder(settings: Settings):
    """The embedding model, loaded once per server (and per model)."""
    return load_embedder(settings)


@st.cache_resource(show_spinner="Chargement de l'index…")
def get_engine(settings: Settings) -> Engine:
    """The engine for these settings, loaded once per server; raises IndexUnusableError."""
    return open_engine(settings, get_embedder(_model_only(settings)))


@st.cache_resource
def _build_lock() -> threading.Lock:
    """One index build at a time across the sessions of this server."""
    return threading.Lock()


def _model_only(settings: Settings) -> Settings:
    """The settings that matter to the model, so every index shares one loaded model."""
    return Settings(model=settings.model, model_cache=settings.model_cache)


def build_index(settings: Settings) -> None:
    """Build the index with a progress bar, then drop the engines loaded from the old one."""
    bar = st.progress(0.0, text="Construction de l'index…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"Construction de l'index… {done}/{total} textes encodés")

    with _build_lock():
        build(settings, embedder=get_embedder(_model_only(settings)), progress=progress)
    get_engine.clear()
    bar.empty()
    st.success("Index construit.")


def load_engine(settings: Settings) -> Engine:
    """The engine, building the index first when there is none; stops the page on failure."""
    try:
        try:
            return get_engine(settings)
        except MissingIndexError:
            build_index(settings)
            return get_engine(settings)
    except IndexUnusableError as error:
        st.error(escape_markdown(str(error)))
        if st.button("Reconstruire l'index"):
            build_index(settings)
            st.rerun()
    except ModelLoadError as error:
        st.error(escape_markdown(str(error)))
    st.stop()


# --- drawing -------------------------------------------------------------------------------


def show_footnote_list(item: AnswerPassage, missing: str) -> None:
    """The passage's footnotes as plain lines (inside an expander, where expanders cannot nest)."""
    lines = [f"\\[{f.number}\\] {escape_markdown(f.reference or missing)}" for f in item.footnotes]
    if lines:
        st.caption("  \n".join(lines))


def show_answer(answer: Answer) -> None:
    """One assistant reply: the no-answer message if any, the best passage, then the others collapsed."""
    labels = LABELS.get(answer.language, LABELS["fr"])
    if not answer.answered:
        st.markdown(escape_markdown(answer.message or ""))
    if not answer.passages:
        return
    first, *others = answer.passages
    kind = labels["source"] if answer.answered else labels["maybe"]
    st.caption(
        f"{kind} · {escape_markdown(first.passage.title)} › {escape_markdown(first.passage.section)}"
        f" · score {first.score:.2f}"
    )
    st.markdown(highlighted(first.passage.text, first.sentence if answer.answered else None))
    for note in first.footnotes:
        preview = note.reference or labels["missing"]
        with st.expander(f"\\[{note.number}\\] {escape_markdown(_shorten(preview))}"):
            st.markdown(escape_markdown(preview))
    for item in others:
        with st.expander(
            f"{labels['maybe'] if not answer.answered else 'Passage'} {item.rank} · "
            f"{escape_markdown(item.passage.section)} · score {item.score:.2f}"
        ):
            st.caption(escape_markdown(item.passage.title))
            st.markdown(escape_markdown(item.passage.text))
            show_footnote_list(item, labels["missing"])


def _shorten(text: str, limit: int = 70) -> str:
    """``text`` cut to ``limit`` characters (for labels)."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def show_message(message: dict) -> None:
    """Draw one entry of the chat history."""
    with st.chat_message(message["role"]):
        if "answer" in message:
            show_answer(message["answer"])
        elif "error" in message:
            st.error(escape_markdown(message["error"]))
        else:
            st.markdown(escape_markdown(message["content"]))


def main() -> None:
    """The page: load (or build) the engine, warn if stale, then the chat."""
    st.set_page_config(page_title="citeqa", page_icon="📚")
    st.title("citeqa")
    st.caption("Posez une question sur le corpus (en français ou en anglais) ; la réponse est une phrase du corpus, avec ses sources.")
    settings = Settings.from_env()
    engine = load_engine(settings)
    reasons = engine.stale_reasons()
    if reasons:
        st.warning("L'index ne correspond plus au corpus : " + escape_markdown(", ".join(reasons)))
        if st.button("Reconstruire l'index"):
            build_index(settings)
            st.rerun()

    history = st.session_state.setdefault("messages", [])
    for message in history:
        show_message(message)
    question = st.chat_input("Votre question…")
    if question is None:
        return
    new = [{"role": "user", "content": question}]
    try:
        new.append({"role": "assistant", "answer": engine.ask(question)})
    except QuestionError as error:
        new.append({"role": "assistant", "error": f"Question refusée : {error}"})
    history.extend(new)
    for message in new:
        show_message(message)


if __name__ == "__main__":  # also true under `streamlit run`; false when tests import this file
    main()
