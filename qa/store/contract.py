"""What an index is to the rest of citeqa, whichever backend holds it.

Retrieval, answers and the UI talk to a ``PassageStore``: dense and lexical search, the vectors
and passages at some rows, the documents' references. ``qa.store.folder`` implements it with a folder
(FAISS + bm25s, the default); a database backend implements the same methods. A *row* is the
store's own integer key of a passage. An ``articles`` filter is a set of document ids (None:
all documents).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Protocol

import numpy as np

from qa.config import Settings
from qa.ingest.corpus import file_hashes
from qa.ingest.passages import Passage

Articles = frozenset[str] | None


class IndexUnusableError(RuntimeError):
    """The index cannot be used; the message says why and what to do."""


class MissingIndexError(IndexUnusableError):
    pass


class IncompatibleIndexError(IndexUnusableError):
    """The index was built with another model or dimension: it must be rebuilt."""


@dataclass(frozen=True)
class Manifest:
    """What a build was made from and with."""

    format_version: int
    model: str
    dimension: int
    chunk_size: int
    chunk_overlap: int
    corpus_files: dict[str, str]
    documents: int
    passages: int
    built_at: str
    files: dict[str, int] = field(default_factory=dict)  # size of every other file of the build
    vector_index: dict = field(default_factory=lambda: {"type": "flat"})  # vector index type and parameters
    skipped: tuple[str, ...] = ()  # the corpus files the build could not read, one message each


@dataclass(frozen=True)
class DocumentInfo:
    """What answers need of a document besides its passages: title and reference texts."""

    doc_id: str
    title: str
    references: dict[int, str]


class PassageStore(Protocol):
    """A loaded index, as retrieval, answers and the UI use it."""

    manifest: Manifest
    location: str  # where it is, for messages (a folder, or a database URL without password)
    documents: dict[str, DocumentInfo]
    searches_in_parallel: bool  # whether dense_search and lexical_search may run at once, on two threads

    def dense_search(self, query: np.ndarray, width: int, articles: Articles = None) -> np.ndarray:
        """Rows of the ``width`` passages whose vectors are nearest the query (shape (dimension,))."""

    def lexical_search(self, query_terms: list[str], width: int, articles: Articles = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows and BM25 scores of the ``width`` best passages for the terms, best first (only
        passages with a positive score)."""

    def document_frequencies(self, query_terms: Iterable[str]) -> dict[str, int]:
        """For each of the terms, how many indexed passages contain it (0 for an unknown term)."""

    def passages_at(self, rows: np.ndarray) -> list[Passage]:
        """The passages at these rows, in the same order."""

    def passage_vectors(self, rows: np.ndarray) -> np.ndarray:
        """The passage vectors at these rows, shape (len(rows), dimension)."""

    def sentence_vectors(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The vectors of the sentences of the passages at these rows, stacked in row order,
        and where each passage's sentences start in that stack (len(rows) + 1 offsets)."""

    def passage_with_id(self, passage_id: str) -> Passage | None:
        """The passage of this id, if the index holds one."""

    def neighbours(self, passage: Passage, around: int = 1) -> list[Passage]:
        """The passage with up to ``around`` passages before and after it in its document."""

    def citation_counts(self, doc_id: str) -> dict[int, int]:
        """For each reference of a document, how many of its article passages cite it."""

    def follow_current(self) -> None:
        """Before a question: move to the build now current, if the store follows rebuilds made
        by other processes (a database does; a loaded folder keeps the build it loaded)."""


def reference_text(store: PassageStore, doc_id: str, number: int) -> str | None:
    """The text of reference ``number`` of a document, if it has one."""
    document = store.documents.get(doc_id)
    return document.references.get(number) if document else None


def check_compatible(store: PassageStore, settings: Settings, dimension: int) -> None:
    """Refuse an index built with another model or dimension than the one loaded."""
    manifest = store.manifest
    if manifest.model != settings.model or manifest.dimension != dimension:
        raise IncompatibleIndexError(
            f"the index in {store.location} was built with model {manifest.model!r} "
            f"({manifest.dimension} dimensions), not {settings.model!r} ({dimension}); "
            "rebuild it with `python -m qa build`"
        )


def stale_reasons(manifest: Manifest, settings: Settings) -> list[str]:
    """Why an index no longer matches the corpus and settings (empty when it is up to date)."""
    reasons = []
    current = file_hashes(settings.corpus) if settings.corpus.is_dir() else {}
    built = manifest.corpus_files
    reasons += [f"{name} changed" for name in sorted(current.keys() & built.keys()) if current[name] != built[name]]
    reasons += [f"{name} added" for name in sorted(current.keys() - built.keys())]
    reasons += [f"{name} removed" for name in sorted(built.keys() - current.keys())]
    if (manifest.chunk_size, manifest.chunk_overlap) != (settings.chunk_size, settings.chunk_overlap):
        reasons.append("splitting settings changed")
    return reasons


