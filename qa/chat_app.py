"""citeqa chat UI: ask the corpus a question, see the sentence that answers, in its passage, with its sources.

Run with ``streamlit run app.py`` (a checkout) or ``citeqa chat`` (which runs this file). The one
module of ``qa`` that imports Streamlit: only Streamlit runs it, no other module of ``qa`` imports
it. It only draws; every decision is made in the rest of ``qa``.
Corpus text is never trusted as Markdown or HTML: it always goes through ``escape_markdown``.
The labels of an answer are in the language of its question; the conversation's own words (input,
buttons, refusals) in that of the latest question; the index's sidebar stays in French.
A question is read after the earlier ones since the last "new topic" (qa/answer/conversation.py);
the conversation is kept under an id in the URL (``?conversation=…``) and asked again on reload.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future
from datetime import datetime

import streamlit as st

from qa.answer.conversation import Turn
from qa.answer.question import QuestionError
from qa.answer.result import Answer, AnswerPassage
from qa.config import Settings
from qa.engine import Engine, build, index_status, open_engine
from qa.tools.conversation_log import load_conversation, new_conversation_id, save_conversation
from qa.tools.corpus_jobs import CorpusChangeError, CorpusJobs, NewFile
from qa.tools.feedback import record_vote
from qa.store.building import BuildReport, IndexStatus
from qa.store.contract import Articles, IndexUnusableError, MissingIndexError, PassageStore
from qa.store.model import ModelLoadError, load_encoder
from qa.chat_text import (LABELS, colon, confidence_cue, conversation_markdown, escape_markdown, explanation_markdown, file_status_line,
                          highlighted, job_progress, labels_for, page_language, passage_place, refusal, understood_line)

EXAMPLES = (
    "Combien de soldats la Russie a-t-elle déployés en janvier 2022 ?",
    "Quelle part de la population du Kazakhstan est d'origine russe ?",
    "How long is the border between Kazakhstan and Russia?",
    "When did Putin visit Astana?",
)
MAX_K = 10
PENDING_QUESTION = "pending_question"  # an example clicked, asked on the next run
LAST_BUILD = "last_build"  # the BuildReport of this session's latest build
CORPUS_JOB = "corpus_job"  # the id of this session's latest upload or removal
UPLOADER = "uploader"  # how many uploads this session made: the file picker's key, emptied after each
CONVERSATION_PARAMETER = "conversation"  # the URL's query parameter holding the conversation's id


# --- loading -------------------------------------------------------------------------------


# The model and the index load in background threads, started by the first run of the page, so
# that the page (and the question box) is drawn at once; a question waits for them if it must.


def in_background(function, *args) -> Future:
    """Run ``function(*args)`` in a daemon thread; its result (or exception) in a Future."""
    future: Future = Future()

    def run() -> None:
        try:
            future.set_result(function(*args))
        except BaseException as error:  # handed to whoever waits for the result
            future.set_exception(error)

    threading.Thread(target=run, name=f"citeqa-{function.__name__}", daemon=True).start()
    return future


@st.cache_resource(show_spinner=False)
def embedder_loading(settings: Settings) -> Future:
    """The embedding model, loading once per server (and per model)."""
    return in_background(load_encoder, settings)


@st.cache_resource(show_spinner=False)
def engine_loading(settings: Settings) -> Future:
    """The engine for these settings, loading once per server."""
    model = embedder_loading(_model_only(settings))

    def open_when_the_model_is_loaded() -> Engine:
        return open_engine(settings, model.result())

    return in_background(open_when_the_model_is_loaded)


def wait_for(future: Future, message: str, cached) -> object:
    """The future's result, with a spinner while it is not there; a failure is not kept in the
    cache, so that the next run tries again."""
    if not future.done():
        with st.spinner(message):
            future.result()
    try:
        return future.result()
    except BaseException:
        cached.clear()
        raise


def get_embedder(settings: Settings):
    """The embedding model, loaded once per server (and per model); raises ModelLoadError."""
    return wait_for(embedder_loading(_model_only(settings)), "Chargement du modèle…", embedder_loading)


def get_engine(settings: Settings) -> Engine:
    """The engine for these settings, loaded once per server; raises IndexUnusableError."""
    try:
        return wait_for(engine_loading(settings), "Chargement du modèle et de l'index…", engine_loading)
    except ModelLoadError:
        embedder_loading.clear()
        raise


def _model_only(settings: Settings) -> Settings:
    """The settings that matter to the model, so every index shares one loaded model."""
    return Settings(model=settings.model, model_cache=settings.model_cache, torch_threads=settings.torch_threads,
                    encoder_precision=settings.encoder_precision)


def build_index(settings: Settings) -> None:
    """Build the index with a progress bar (one build at a time per index folder: qa locks it),
    keep its report for the sidebar, then drop the engines loaded from the old one."""
    bar = st.progress(0.0, text="Construction de l'index…")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total if total else 1.0, text=f"Construction de l'index… {done}/{total} textes encodés")

    st.session_state[LAST_BUILD] = build(settings, embedder=get_embedder(_model_only(settings)), progress=progress)
    engine_loading.clear()
    bar.empty()


def offer_rebuild(settings: Settings, key: str | None = None) -> None:
    """A "rebuild" button, when the chat was started with uploads allowed; once the build is done
    the page starts again on the new index."""
    if not settings.chat_uploads or not st.button("Reconstruire l'index", icon=":material/refresh:", key=key):
        return
    try:
        build_index(settings)
    except IndexUnusableError as error:  # e.g. a corpus with no readable article: the old build stays
        st.error(escape_markdown(str(error)))
    else:
        st.rerun()


def load_engine(settings: Settings) -> Engine:
    """The engine, building the index first when there is none; stops the page on failure
    (with an error and a rebuild button)."""
    try:
        try:
            return get_engine(settings)
        except MissingIndexError:
            build_index(settings)
            return get_engine(settings)
    except IndexUnusableError as error:
        st.error(escape_markdown(str(error)))
        offer_rebuild(settings, key="rebuild-after-error")
    except ModelLoadError as error:
        st.error(escape_markdown(str(error)))
    st.stop()


# --- conversation --------------------------------------------------------------------------


def exchange(engine: Engine, question: str, k: int, articles: Articles, history: list[dict]) -> list[dict]:
    """The two history entries of asking ``question`` after ``history``: the question, then the
    answer (read after the earlier turns of the topic, and explained) or the refusal."""
    asked = {"role": "user", "content": question}
    language = page_language([*asked_questions(history), question])
    try:
        with st.spinner(labels_for(language)["searching"]):
            answer = engine.ask(question, k=k, articles=articles, history=earlier_turns(history), explain=True)
    except QuestionError as error:
        return [asked, {"role": "assistant", "error": refusal(error, language)}]
    except IndexUnusableError as error:  # e.g. the database server went away during the question
        return [asked, {"role": "assistant", "error": str(error)}]
    return [asked, {"role": "assistant", "answer": answer, "id": uuid.uuid4().hex}]


def earlier_turns(history: list[dict]) -> list[Turn]:
    """The turns a new question is read after: the answers since the last "new topic"."""
    since = max((i for i, message in enumerate(history) if message["role"] == "topic"), default=-1) + 1
    return [message["answer"].as_turn() for message in history[since:] if "answer" in message]


def asked_questions(history: list[dict]) -> list[str]:
    return [message["content"] for message in history if message["role"] == "user"]


def start_new_topic() -> None:
    """Callback of the "new topic" button: the next questions are read alone again."""
    history = st.session_state.setdefault("messages", [])
    if history and history[-1]["role"] != "topic":
        history.append({"role": "topic"})
        keep_conversation(history)


def keep_conversation(history: list[dict]) -> None:
    """Save what was asked under the conversation's id (made, and put in the URL, the first time)."""
    conversation_id = st.query_params.get(CONVERSATION_PARAMETER) or new_conversation_id()
    entries = [{"new_topic": True} if m["role"] == "topic" else {"question": m["content"]} for m in history if m["role"] in ("topic", "user")]
    try:
        save_conversation(Settings.from_env().conversations, conversation_id, entries)
    except (OSError, ValueError) as error:  # a bad id in the URL, a full disk: the chat goes on unsaved
        st.toast(escape_markdown(f"{error}"))
        return
    st.query_params[CONVERSATION_PARAMETER] = conversation_id


def restored_conversation(engine: Engine, k: int, articles: Articles) -> list[dict]:
    """The conversation of the URL's id, asked again (a page reload); none without one."""
    conversation_id = st.query_params.get(CONVERSATION_PARAMETER)
    if not conversation_id:
        return []
    try:
        entries = load_conversation(Settings.from_env().conversations, conversation_id)
    except ValueError as error:
        st.warning(escape_markdown(str(error)))
        return []
    history: list[dict] = []
    for entry in entries:
        if entry.get("new_topic"):
            history.append({"role": "topic"})
        else:
            history.extend(exchange(engine, entry["question"], k, articles, history))
    return history


def ask_example(question: str) -> None:
    """Callback of an example button: ask it on this run."""
    st.session_state[PENDING_QUESTION] = question


def clear_conversation() -> None:
    """Callback of the clear button: forget the history (votes already saved stay saved) and start
    a new conversation id."""
    st.session_state["messages"] = []
    st.query_params.pop(CONVERSATION_PARAMETER, None)


def save_vote(message: dict) -> None:
    """Callback of an answer's 👍/👎: append the vote to the feedback file."""
    value = st.session_state[vote_key(message)]
    if value is None:  # the vote was withdrawn: what was written stays, a later vote supersedes it
        return
    labels = labels_for(message["answer"].language)
    try:
        record_vote(message["answer"], "up" if value == 1 else "down")
    except OSError as error:
        st.toast(f"{labels['not_saved']}{colon(message['answer'].language)} {escape_markdown(str(error))}")
    else:
        st.toast(labels["thanks"])


def vote_key(message: dict) -> str:
    """The session-state key of an answer's vote widget."""
    return f"vote-{message['id']}"


# --- drawing -------------------------------------------------------------------------------


def show_footnote_list(item: AnswerPassage, missing: str) -> None:
    """The passage's footnotes as plain lines (inside an expander, where popovers would be cramped)."""
    lines = [f"\\[{f.number}\\] {escape_markdown(f.reference or missing)}" for f in item.footnotes]
    if lines:
        st.caption("  \n".join(lines))


def show_citations(answer: Answer, item: AnswerPassage) -> None:
    """One button per footnote marker of the passage, opening its reference text; those that
    back the answering sentence stand out."""
    labels = labels_for(answer.language)
    backing = {f.number for f in answer.answer_footnotes} if answer.answered else set()
    with st.container(horizontal=True):
        for note in item.footnotes:
            kind = "primary" if note.number in backing else "secondary"
            with st.popover(f"\\[{note.number}\\]", type=kind):
                st.markdown(escape_markdown(note.reference or labels["missing"]))


def show_in_context(index: PassageStore, item: AnswerPassage, labels: dict[str, str]) -> None:
    """The passage among its neighbours in its document, itself framed and marked (when its
    document is still indexed: an earlier answer may quote one removed since)."""
    if item.passage.doc_id not in index.documents:
        return
    with st.expander(labels["context"], icon=":material/unfold_more:"):
        for passage in index.neighbours(item.passage):
            if passage.id == item.passage.id:
                with st.container(border=True):
                    st.caption(f"▶ {labels['here']} · {escape_markdown(passage.section)}")
                    st.markdown(highlighted(passage.text, item.sentence))
            else:
                st.caption(escape_markdown(passage.section))
                st.markdown(escape_markdown(passage.text))


def show_answer(answer: Answer, index: PassageStore) -> None:
    """One assistant reply: the confidence cue, the no-answer message if any, the best passage
    with its place, citations and context, then the others collapsed."""
    labels = labels_for(answer.language)
    cue = confidence_cue(answer)
    understood = understood_line(answer)
    if understood:
        st.caption(understood)
    if not answer.answered:
        st.markdown(f"{cue}  \n{escape_markdown(answer.message or '')}")
    else:
        st.markdown(cue + (f"  \n**{labels['answer']}{colon(answer.language)} {escape_markdown(answer.answer_text)}**" if answer.answer_text else ""))
    if not answer.passages:
        return
    first, *others = answer.passages
    kind = labels["source"] if answer.answered else labels["maybe"]
    st.caption(f"{kind} · {passage_place(first.passage)}")
    st.markdown(highlighted(first.passage.text, first.sentence if answer.answered else None, first.answer))
    show_citations(answer, first)
    show_same_fact(first, labels)
    show_in_context(index, first, labels)
    show_why(answer, 0)
    for item in others:
        with st.expander(
            f"{labels['maybe'] if not answer.answered else labels['passage']} {item.rank} · "
            f"{escape_markdown(item.passage.section)} · score {item.score:.2f}"
        ):
            st.caption(escape_markdown(item.passage.title))
            st.markdown(escape_markdown(item.passage.text))
            show_footnote_list(item, labels["missing"])
            show_why(answer, item.rank - 1, expander=False)


def show_why(answer: Answer, position: int, expander: bool = True) -> None:
    """« Pourquoi ce passage ? »: the question's terms in the passage, its scores and ranks."""
    if position >= len(answer.explanations):
        return
    labels = labels_for(answer.language)
    text = explanation_markdown(answer.passages[position].passage, answer.explanations[position], answer.language)
    if expander:
        with st.expander(labels["why"], icon=":material/manage_search:"):
            st.markdown(text)
    else:  # inside the passage's own expander, which cannot hold another
        st.caption(f"**{labels['why']}**")
        st.markdown(text)


def show_same_fact(item: AnswerPassage, labels: dict[str, str]) -> None:
    """The other articles that say the same sentence: each place, its sentence and footnotes."""
    for source in item.same_fact:
        st.caption(f"{labels['also']} · {passage_place(source.passage)}")
        notes = " ".join(f"\\[{f.number}\\] {escape_markdown(f.reference or labels['missing'])}" for f in source.footnotes)
        st.markdown(f"> {escape_markdown(source.passage.text[source.sentence[0] : source.sentence[1]])}" + (f"  \n> {notes}" if notes else ""))


def show_message(message: dict, index: PassageStore, language: str) -> None:
    """Draw one entry of the chat history; an answer gets 👍/👎 buttons; a new topic, a rule."""
    if message["role"] == "topic":
        st.divider()
        st.caption(labels_for(language)["topic_started"])
        return
    with st.chat_message(message["role"]):
        if "answer" in message:
            show_answer(message["answer"], index)
            st.feedback("thumbs", key=vote_key(message), on_change=save_vote, args=(message,))
        elif "error" in message:
            st.error(escape_markdown(message["error"]))
        else:
            st.markdown(escape_markdown(message["content"]))


def show_examples() -> None:
    """Example questions, in French and English, each asked when clicked."""
    st.caption("Pour commencer, essayez / To start, try:")
    with st.container(horizontal=True):
        for question in EXAMPLES:
            st.button(question, on_click=ask_example, args=(question,), icon=":material/chat_bubble:")


def show_sources(index: PassageStore) -> None:
    """Each document's reference list, with how many of its passages cite each reference."""
    for doc_id, document in index.documents.items():
        st.subheader(escape_markdown(document.title))
        counts = index.citation_counts(doc_id)
        lines = [
            f"- **\\[{number}\\]** {escape_markdown(document.references.get(number, LABELS['fr']['missing']))}"
            f" — :blue-badge[cité par {count} passage{'s' if count > 1 else ''}]"
            for number, count in sorted(counts.items())
        ]
        st.markdown("\n".join(lines) if lines else "Aucune référence.")


def show_index_status(status: IndexStatus) -> None:
    """What the index holds, when it was built, and whether it still matches the corpus."""
    if status.building:
        st.info("Construction de l'index en cours…")
    if status.problem:
        st.error(escape_markdown(status.problem))
    if status.manifest is None:
        return
    documents, passages = st.columns(2)
    documents.metric("Documents", status.manifest.documents)
    passages.metric("Passages", status.manifest.passages)
    built = datetime.fromisoformat(status.manifest.built_at).strftime("%d/%m/%Y à %H:%M %Z")
    st.caption(f"Construit le {escape_markdown(built)}")
    if status.stale:
        st.warning("L'index ne correspond plus au corpus : " + escape_markdown(", ".join(status.stale)))
    else:
        st.caption(":green[:material/check: À jour avec le corpus]")
    for problem in status.manifest.skipped:
        st.warning("Fichier non lu : " + escape_markdown(problem))


def show_build_report(report: BuildReport) -> None:
    """What the latest build of this session did."""
    st.success(
        f"Index construit en {report.seconds:.1f} s : {report.passages} passages, "
        f"{report.embedded} textes encodés, {report.reused} réutilisés."
    )  # the files it could not read are in the index's status, above


def show_index_and_settings(settings: Settings) -> int:
    """The sidebar's index status, rebuild button and settings; the number of passages to show."""
    st.header("Index")
    show_index_status(index_status(settings))
    if LAST_BUILD in st.session_state:
        show_build_report(st.session_state[LAST_BUILD])
    offer_rebuild(settings)
    st.header("Réglages")
    k = st.slider("Passages par réponse (k)", 1, MAX_K, min(settings.top_k, MAX_K), key="k")
    st.caption(f"Modèle : {escape_markdown(settings.model)}")
    return k


@st.cache_resource(show_spinner=False)
def corpus_jobs(settings: Settings) -> CorpusJobs:
    """The uploads and removals of this server, run in its background thread, built with the chat's model."""
    return CorpusJobs(settings, embedder_loading(_model_only(settings)).result)


def show_corpus_changes(settings: Settings, store: PassageStore) -> None:
    """The sidebar's upload and removal of documents (when the chat was started with uploads
    allowed), then the progress of this session's latest one."""
    st.header("Documents")
    count = st.session_state.setdefault(UPLOADER, 0)
    files = st.file_uploader("Ajouter des documents", accept_multiple_files=True, key=f"{UPLOADER}-{count}")
    if st.button("Ajouter au corpus", icon=":material/upload:", disabled=not files):
        submit(lambda: corpus_jobs(settings).add([NewFile(f.name, f.getvalue()) for f in files]))
        st.session_state[UPLOADER] = count + 1  # a new, empty file picker
        st.rerun()
    titles = {d.title: d.doc_id for d in store.documents.values()}
    removed = st.selectbox("Retirer un document", sorted(titles), index=None, placeholder="Choisir un document")
    if st.button("Retirer du corpus", icon=":material/delete:", disabled=removed is None):
        submit(lambda: corpus_jobs(settings).remove(titles[removed]))
    if CORPUS_JOB in st.session_state:
        show_job_progress(corpus_jobs(settings), st.session_state[CORPUS_JOB])


def submit(change) -> None:
    """Submit a change to the corpus and follow it in this session; a change the corpus cannot take is said."""
    try:
        st.session_state[CORPUS_JOB] = change().id
    except CorpusChangeError as error:
        st.error(escape_markdown(str(error)))


def show_job_progress(jobs: CorpusJobs, job_id: str) -> None:
    """The job's progress bar and each file's status, redrawn every second until it is over;
    then the page starts again on the new index."""

    def draw() -> None:
        job = jobs.get(job_id)
        if job is None:
            return
        st.progress(*job_progress(job))
        for file in job.files:
            st.caption(file_status_line(file))
        for warning in job.warnings:
            st.warning(escape_markdown(warning))
        if job.finished and not st.session_state.get(f"reloaded-{job_id}"):
            st.session_state[f"reloaded-{job_id}"] = True
            engine_loading.clear()  # the next run opens the new build
            st.rerun()

    job = jobs.get(job_id)
    st.fragment(draw, run_every=None if job is None or job.finished else 1.0)()


def choose_articles(store: PassageStore) -> Articles:
    """The sidebar's article filter, when the corpus has several: None means every article."""
    titles = {d.title: d.doc_id for d in store.documents.values()}
    if len(titles) < 2:
        return None
    chosen = st.multiselect("Articles", sorted(titles), key="articles", placeholder="Tous les articles")
    return frozenset(titles[t] for t in chosen) or None


def show_conversation_actions(history: list[dict], language: str) -> None:
    """The sidebar's new topic, clear and export buttons."""
    labels = labels_for(language)
    st.header(labels["conversation"])
    st.button(labels["new_topic"], on_click=start_new_topic, disabled=not history or history[-1]["role"] == "topic",
              icon=":material/restart_alt:", help=labels["new_topic_help"])
    st.button(labels["clear"], on_click=clear_conversation, disabled=not history, icon=":material/delete:")
    st.download_button(
        labels["export"],
        data=conversation_markdown(history),
        file_name="citeqa-conversation.md",
        mime="text/markdown",
        disabled=not history,
        icon=":material/download:",
    )


def main() -> None:
    """The page: load (or build) the engine; the sidebar; then the chat and the sources in tabs."""
    st.set_page_config(page_title="citeqa", page_icon="📚")
    st.title("citeqa")
    drawn = page_language(asked_questions(st.session_state.get("messages", [])))  # the language of the words above the answers
    labels = labels_for(drawn)
    st.caption(labels["intro"])
    settings = Settings.from_env()
    loading = engine_loading(settings)  # starts loading the model and index in the background
    if loading.done() or index_status(settings).problem:
        load_engine(settings)  # a missing index is built, an unusable one stops the page here
    with st.sidebar:
        k = show_index_and_settings(settings)
    question = st.chat_input(labels["ask"]) or st.session_state.pop(PENDING_QUESTION, None)
    engine = load_engine(settings)  # waits for the model and index, if they are still loading
    with st.sidebar:
        articles = choose_articles(engine.store)
        if settings.chat_uploads:
            show_corpus_changes(settings, engine.store)
    if "messages" not in st.session_state:  # a new session: the URL's conversation, if any (a reload)
        with st.spinner(labels["replaying"]):
            st.session_state["messages"] = restored_conversation(engine, k, articles)
    history = st.session_state["messages"]
    if question is not None:
        history.extend(exchange(engine, question, k, articles, history))
        keep_conversation(history)
    language = page_language(asked_questions(history))
    if language != drawn:
        st.rerun()  # a question, or a conversation restored, in the other language: the intro and input box too
    with st.sidebar:
        show_conversation_actions(history, language)
    chat, sources = st.tabs([labels_for(language)["conversation"], labels_for(language)["sources"]])
    with chat:
        for message in history:
            show_message(message, engine.store, language)
        if not history:
            show_examples()
    with sources:
        show_sources(engine.store)


if __name__ == "__main__":  # under `citeqa chat` (`streamlit run` of this file); app.py calls main() itself
    main()
