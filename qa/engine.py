"""The loaded pieces that answer questions: model, index and retriever, loaded once."""

from __future__ import annotations

from dataclasses import dataclass

from qa.answer import Answer, answer_question
from qa.config import Settings
from qa.corpus import read_corpus
from qa.index import BuildReport, Progress, SearchIndex, build_index, check_compatible, load_index, stale_reasons
from qa.model import load_embedder
from qa.retrieve import Retriever


@dataclass
class Engine:
    settings: Settings
    embedder: object  # a sentence_transformers.SentenceTransformer
    index: SearchIndex
    retriever: Retriever

    def ask(self, question: str, k: int | None = None) -> Answer:
        return answer_question(question, self.retriever, k or self.settings.top_k, self.settings.max_question_chars)

    def stale_reasons(self) -> list[str]:
        return stale_reasons(self.index, self.settings)


def build(settings: Settings, embedder=None, progress: Progress | None = None, full: bool = False) -> BuildReport:
    """Read the corpus and write a new index, reusing the embeddings of unchanged texts."""
    return build_index(read_corpus(settings.corpus), settings, embedder or load_embedder(settings), progress, full)


def open_engine(settings: Settings, embedder=None) -> Engine:
    """Load the model and the current index, refusing an index built with another model."""
    embedder = embedder or load_embedder(settings)
    index = load_index(settings.index)
    check_compatible(index, settings, embedder.get_embedding_dimension())
    return Engine(settings, embedder, index, Retriever(index, embedder))
