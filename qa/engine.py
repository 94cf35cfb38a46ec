"""The loaded pieces that answer questions: model, index, retriever and the answer's models, loaded once.

The one place that knows the two index backends: a folder (FAISS, ``qa.store.folder``) or a
``postgresql://`` URL (``qa.store.postgres``); everything else talks to a ``PassageStore``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from qa.answer.candidates import FEATURES
from qa.answer.choose import CHOICE_FEATURES, CHOICE_MODEL
from qa.answer.conversation import CarryModel, Turn
from qa.answer.judge import CONFIDENCE_MODEL, ConfidenceModel
from qa.answer.pipeline import AnswerModels, answer_question
from qa.answer.ranking import SENTENCE_MODEL, SentenceModel
from qa.answer.reader import READER_DIR, Reader
from qa.answer.result import Answer
from qa.answer.retrieve import Retriever
from qa.config import SHIPPED_READER, Settings, is_database_url
from qa.ingest.converted import ReadLimits
from qa.ingest.corpus import read_corpus
from qa.ingest.text import fold
from qa.store.building import BuildReport, IndexStatus, Progress
from qa.store.contract import Articles, PassageStore, check_compatible, stale_reasons
from qa.store.folder import load_index, set_search_threads
from qa.store.folder_build import build_index
from qa.store.model import load_embedder, load_encoder


@dataclass
class Engine:
    settings: Settings
    embedder: object  # a sentence_transformers.SentenceTransformer
    store: PassageStore
    retriever: Retriever
    models: AnswerModels  # the sentence model, and the reader and the models trained on its scores

    def ask(
        self, question: str, k: int | None = None, articles: Articles = None, history: Sequence[Turn] = (), explain: bool = False,
    ) -> Answer:
        """The answer to a question, read after the conversation's earlier turns (oldest first), if
        any; with ``explain``, why each passage was shown."""
        self.store.follow_current()
        return answer_question(
            question, self.retriever, self.models, k or self.settings.top_k, self.settings.max_question_chars, articles, history, explain,
        )

    def turn(self, question: str, answer: str | None = None, answer_passage: str | None = None) -> Turn:
        """An earlier turn of a conversation: its question and the short answer it was given, if
        any; the id of the passage that answered it, if given, must be one of the index's."""
        if answer_passage is not None and self.store.passage_with_id(answer_passage) is None:
            raise ValueError(f"no passage with id {answer_passage!r} (an earlier turn's answer_passage)")
        return Turn(question, answer)

    def articles_named(self, names: list[str]) -> frozenset[str]:
        """The ids of the articles given by title or file name (any case or accents)."""
        by_name = {fold(key): d.doc_id for d in self.store.documents.values() for key in (d.doc_id, d.title)}
        unknown = [name for name in names if fold(name) not in by_name]
        if unknown:
            titles = ", ".join(sorted(d.title for d in self.store.documents.values()))
            raise ValueError(f"no article named {', '.join(map(repr, unknown))}; the articles are: {titles}")
        return frozenset(by_name[fold(name)] for name in names)

    def stale_reasons(self) -> list[str]:
        return stale_reasons(self.store.manifest, self.settings)


def uses_database(settings: Settings) -> bool:
    """Whether the index is a PostgreSQL database rather than a folder."""
    return is_database_url(settings.index)


def build(settings: Settings, embedder=None, progress: Progress | None = None, full: bool = False) -> BuildReport:
    """Read the corpus and write a new index, reusing the embeddings of unchanged texts."""
    corpus, embedder = read_corpus(settings.corpus, ReadLimits.of(settings)), embedder or load_embedder(settings)
    if uses_database(settings):
        from qa.store.postgres_build import build_database

        return build_database(corpus, settings, embedder, progress, full)
    return build_index(corpus, settings, embedder, progress, full)


def open_store(settings: Settings) -> PassageStore:
    """The current index, from its folder or its database."""
    if uses_database(settings):
        from qa.store.postgres import DatabaseStore

        return DatabaseStore(settings.index)
    set_search_threads(settings)
    return load_index(settings.index)


def index_status(settings: Settings) -> IndexStatus:
    """The state of the index (folder or database), without loading it."""
    if uses_database(settings):
        from qa.store.postgres import database_status

        return database_status(settings)
    from qa.store.folder import index_status as folder_status

    return folder_status(settings)


def open_retriever(settings: Settings, embedder=None) -> Retriever:
    """Load the model (the fast encoder when it can, see qa.model.load_encoder) and the current
    index, refusing an index built with another model."""
    embedder = embedder or load_encoder(settings)
    store = open_store(settings)
    check_compatible(store, settings, embedder.get_embedding_dimension())
    return Retriever(store, embedder)


def reader_folder(settings: Settings) -> Path:
    """The configured reader's folder (``settings.reader`` is not "none")."""
    return READER_DIR if settings.reader == SHIPPED_READER else Path(settings.reader)


def load_answer_models(settings: Settings, trained_choice: bool = True, judged: bool = True) -> AnswerModels:
    """The sentence model, the conversation's carry model, and the configured reader with the choice and confidence models trained
    on its scores (``trained_choice=False``, ``judged=False``: without them, to train them)."""
    sentence, carry = SentenceModel.load(SENTENCE_MODEL, FEATURES), CarryModel.load(settings.carry_model)
    if settings.reader == "none":
        return AnswerModels(sentence, carry)
    folder = reader_folder(settings)
    choice = SentenceModel.load(folder / CHOICE_MODEL, CHOICE_FEATURES) if trained_choice else None
    confidence = ConfidenceModel.load(folder / CONFIDENCE_MODEL) if judged else None
    return AnswerModels(sentence, carry, Reader.load(settings, folder), choice, confidence, settings.read_windows)


def open_engine(settings: Settings, embedder=None, judged: bool = True) -> Engine:
    """The retriever (``open_retriever``) and the answer's models (``load_answer_models``)."""
    retriever = open_retriever(settings, embedder)
    return Engine(settings, retriever.embedder, retriever.store, retriever, load_answer_models(settings, judged=judged))
