"""Reading an index folder (FAISS + bm25s): the ``PassageStore`` of the folder backend, and its status.

Layout of the index folder (``index/`` by default)::

    CURRENT                  name of the build in use (replaced atomically)
    build-<time>/manifest.json   model, dimension, splitting, corpus file hashes, format version
    build-<time>/passages.json   documents (title, references) and passages, one compact column
                                 per field of Passage (``qa.store.columns``)
    build-<time>/vectors.faiss   the passage embeddings (inner product = cosine): exact search,
                                 or HNSW above ``Settings.ann_threshold`` passages (manifest)
    build-<time>/sentences.npy   one embedding per sentence of each passage, in passage order
                                 (memory-mapped when loaded: it is the largest file)
    build-<time>/lexical/        the BM25 index (bm25s's npy/json files)

Builds are written by ``qa.store.folder_build``. Nothing is pickled.
"""

from __future__ import annotations

import fcntl
import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import faiss
import numpy as np

from qa.config import Settings
from qa.ingest.passages import CITING, Passage
from qa.store.building import FORMAT_VERSION, IndexStatus, document_rows
from qa.store.columns import passages_from_json
from qa.store.contract import (
    Articles,
    DocumentInfo,
    IncompatibleIndexError,
    IndexUnusableError,
    Manifest,
    MissingIndexError,
    stale_reasons,
)
from qa.store.lexical import LexicalIndex

POINTER = "CURRENT"
LOCK = ".build.lock"


@dataclass
class SearchIndex:
    """A loaded index folder: the FAISS and bm25s implementation of ``PassageStore``."""

    folder: Path
    manifest: Manifest
    passages: list[Passage]
    documents: dict[str, DocumentInfo]
    vectors: faiss.Index
    lexical: LexicalIndex
    sentence_matrix: np.ndarray  # one vector per sentence, in passage order (memory-mapped)
    sentence_rows: np.ndarray  # first row of each passage's sentences in sentence_matrix
    document_rows: dict[str, tuple[int, int]]  # doc_id → its passages' rows [first, last + 1)
    searches_in_parallel = True  # FAISS releases the GIL while it searches, and so does most of BM25's numpy

    @property
    def location(self) -> str:
        return str(self.folder)

    def dense_search(self, query: np.ndarray, width: int, articles: Articles = None) -> np.ndarray:
        width = min(width, self.vectors.ntotal)
        if articles is None:
            _, rows = self.vectors.search(query[None, :], width)
        else:
            allowed = self.rows_of(articles)
            selector = faiss.IDSelectorBatch(allowed)
            parameters = faiss.SearchParametersHNSW(sel=selector) if isinstance(self.vectors, faiss.IndexHNSW) else faiss.SearchParameters(sel=selector)
            _, rows = self.vectors.search(query[None, :], min(width, len(allowed)) or 1, params=parameters)
        return rows[0][rows[0] >= 0]

    def lexical_search(self, query_terms: list[str], width: int, articles: Articles = None) -> tuple[np.ndarray, np.ndarray]:
        return self.lexical.top(query_terms, width, None if articles is None else self.rows_of(articles))

    def document_frequencies(self, query_terms: Iterable[str]) -> dict[str, int]:
        return {t: self.lexical.document_frequency(t) for t in query_terms}

    def passages_at(self, rows: np.ndarray) -> list[Passage]:
        return [self.passages[row] for row in rows]

    def passage_vectors(self, rows: np.ndarray) -> np.ndarray:
        return self.vectors.reconstruct_batch(np.asarray(rows, dtype=np.int64)).reshape(len(rows), -1)

    def sentence_vectors(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One gather from the memory-mapped sentence vectors, no loop over passages."""
        rows = np.asarray(rows, dtype=np.int64)
        starts = self.sentence_rows[rows]
        lengths = self.sentence_rows[rows + 1] - starts
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        gather = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
        return np.asarray(self.sentence_matrix[gather]), offsets

    def rows_of(self, articles: frozenset[str]) -> np.ndarray:
        """The rows of the passages of these documents (unknown ids are ignored)."""
        ranges = [np.arange(*self.document_rows[d]) for d in sorted(articles) if d in self.document_rows]
        return np.concatenate(ranges).astype(np.int64) if ranges else np.zeros(0, dtype=np.int64)

    def passage_with_id(self, passage_id: str) -> Passage | None:
        return next((p for p in self.passages if p.id == passage_id), None)

    def neighbours(self, passage: Passage, around: int = 1) -> list[Passage]:
        first, end = self.document_rows[passage.doc_id]
        position = next(i for i in range(first, end) if self.passages[i].id == passage.id)
        return self.passages[max(first, position - around) : min(end, position + around + 1)]

    def citation_counts(self, doc_id: str) -> dict[int, int]:
        counts = dict.fromkeys(self.documents[doc_id].references, 0)
        for passage in self.passages[slice(*self.document_rows.get(doc_id, (0, 0)))]:
            if passage.kind in CITING:
                for number in passage.footnotes:
                    counts[number] = counts.get(number, 0) + 1
        return counts

    def follow_current(self) -> None:
        """A loaded folder keeps the build it loaded (the app reloads it after a rebuild)."""


def is_building(root: Path) -> bool:
    """Whether a build holds the lock of this index folder right now."""
    try:
        with open(root / LOCK, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(handle, fcntl.LOCK_UN)
            return False
    except BlockingIOError:
        return True
    except OSError:
        return False


def load_index(root: Path) -> SearchIndex:
    """Load the current build of the index folder, or raise an IndexUnusableError that says why."""
    folder = current_build(root)
    try:
        manifest = read_manifest(folder)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise IndexUnusableError(f"the index in {folder} is unreadable ({error}); rebuild it with `python -m qa build`") from error
    if problem := format_problem(folder, manifest):
        raise IncompatibleIndexError(problem)
    try:
        payload = json.loads((folder / "passages.json").read_text("utf-8"))
        passages = passages_from_json(payload["passages"])
        documents = {
            d["doc_id"]: DocumentInfo(d["doc_id"], d["title"], {int(n): t for n, t in d["references"].items()})
            for d in payload["documents"]
        }
        vectors = faiss.read_index(str(folder / "vectors.faiss"))
        if manifest.vector_index["type"] == "hnsw":
            vectors.hnsw.efSearch = manifest.vector_index["ef_search"]
        lexical = LexicalIndex.load(folder / "lexical")
        sentence_vectors = np.load(folder / "sentences.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise IndexUnusableError(f"the index in {folder} is unreadable ({error}); rebuild it with `python -m qa build`") from error
    if vectors.ntotal != len(passages) or vectors.d != manifest.dimension:
        raise IndexUnusableError(f"the index in {folder} is inconsistent ({vectors.ntotal} vectors for {len(passages)} passages); rebuild it")
    sentence_rows = np.concatenate([[0], np.cumsum([len(p.sentences) for p in passages])])
    if sentence_rows[-1] != len(sentence_vectors):
        raise IndexUnusableError(f"the index in {folder} has sentence vectors that do not match its passages; rebuild it")
    return SearchIndex(folder, manifest, passages, documents, vectors, lexical, sentence_vectors, sentence_rows, document_rows(passages))


def format_problem(location: Path, manifest: Manifest) -> str | None:
    """Why an index written in another format cannot be read, or None."""
    if manifest.format_version == FORMAT_VERSION:
        return None
    return (f"the index in {location} has format {manifest.format_version}, not {FORMAT_VERSION} (written by another "
            "version of citeqa); rebuild it with `python -m qa build`")


def set_search_threads(settings: Settings) -> None:
    """Use ``settings.search_threads`` OpenMP threads in FAISS (0: leave FAISS's default)."""
    if settings.search_threads > 0:
        faiss.omp_set_num_threads(settings.search_threads)


@contextmanager
def search_threads(settings: Settings):
    """``set_search_threads`` for a while, then FAISS's thread count as it was."""
    before = faiss.omp_get_max_threads()
    set_search_threads(settings)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def read_manifest(folder: Path) -> Manifest:
    """The manifest of a build, checked against the sizes of the files it lists."""
    manifest = Manifest(**json.loads((folder / "manifest.json").read_text("utf-8")))
    for name, size in manifest.files.items():
        actual = (folder / name).stat().st_size if (folder / name).is_file() else None
        if actual != size:
            raise ValueError(f"{name} is {'missing' if actual is None else f'{actual} bytes, not {size}'}")
    return manifest


def current_build(root: Path) -> Path:
    """The folder of the build in use."""
    try:
        name = (root / POINTER).read_text("utf-8").strip()
    except FileNotFoundError:
        raise MissingIndexError(f"no index in {root}: build it with `python -m qa build`") from None
    folder = root / name
    if not folder.is_dir():
        raise IndexUnusableError(f"the index in {root} points to {name}, which is missing; rebuild it")
    return folder


def index_status(settings: Settings) -> IndexStatus:
    """The state of the index folder, without loading the index itself."""
    root = settings.index
    building = root.is_dir() and is_building(root)
    try:
        folder = current_build(root)
        manifest = read_manifest(folder)
    except MissingIndexError as error:
        return IndexStatus(root, False, building, str(error))
    except (IndexUnusableError, OSError, ValueError, TypeError) as error:
        return IndexStatus(root, True, building, f"the index in {root} is unreadable ({error}); rebuild it")
    if problem := format_problem(root, manifest):
        return IndexStatus(root, True, building, problem, manifest)
    return IndexStatus(root, True, building, None, manifest, tuple(stale_reasons(manifest, settings)))


