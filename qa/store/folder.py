"""The index on disk: a self-describing folder with the passages, FAISS vectors and BM25.

Layout of the index folder (``index/`` by default)::

    CURRENT                  name of the build in use (replaced atomically)
    build-<time>/manifest.json   model, dimension, splitting, corpus file hashes, format version
    build-<time>/passages.json   documents (title, references) and passages, one compact column
                                 per field of Passage (format 2)
    build-<time>/vectors.faiss   the passage embeddings (inner product = cosine): exact search,
                                 or HNSW above ``Settings.ann_threshold`` passages (manifest)
    build-<time>/sentences.npy   one embedding per sentence of each passage, in passage order
                                 (memory-mapped when loaded: it is the largest file)
    build-<time>/lexical/        the BM25 index (bm25s's npy/json files)

A build is written in a folder of its own, then ``CURRENT`` is switched to it in one rename, so
a failed or interrupted build leaves the previous one in use. Nothing is pickled. Vectors go
straight into memory-mapped files of the staging folder as they are computed, and into FAISS in
batches, so a build of a million passages never holds all its vectors twice in RAM.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields, replace
from itertools import islice
from pathlib import Path
from typing import Iterable

import faiss
import numpy as np

from qa.config import Settings
from qa.ingest.corpus import Corpus
from qa.ingest.documents import Document
from qa.store.lexical import LexicalIndex
from qa.ingest.passages import CITING, Passage
from qa.store.contract import (
    Articles,
    DocumentInfo,
    EmbeddedText,
    IncompatibleIndexError,
    IndexUnusableError,
    Manifest,
    MissingIndexError,
    Progress,
    corpus_passages,
    embed_batches,
    stale_reasons,
    vector_index_description,
)
from qa.ingest.text import without_footnotes

# 2: passages.json in columns. 3: title and section in the embedded texts, sentences embedded
# with the query prompt and the sentence before them, sentence footnotes.
FORMAT_VERSION = 3
POINTER = "CURRENT"
LOCK = ".build.lock"
PASSAGE_VECTORS = ".passages.npy"  # the staging folder's passage vectors, until they are in FAISS


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


def dense_text(passage: Passage) -> str:
    """What is embedded for a passage: where it is (article title, section), then its text
    without footnote markers. A short passage of an article about X rarely names X."""
    return f"{passage.title} — {passage.section}. {without_footnotes(passage.text)}"


def sentence_texts(passage: Passage) -> list[str]:
    """What is embedded for each sentence of a passage: the article title, the sentence before
    it in the passage (what "it" or "he" refers to), then the sentence."""
    sentences = [without_footnotes(passage.text[a:b]) for a, b in passage.sentences]
    return [f"{passage.title}. {' '.join(sentences[max(0, i - 1) : i + 1])}" for i in range(len(sentences))]


def embedded_texts(passages: list[Passage]) -> list[EmbeddedText]:
    """Every text a build embeds, in its row order: the passages, then all their sentences.
    Sentences are embedded with the question's prompt: E5 compares two texts of the same kind
    with "query: " on both sides, and a sentence is compared with a question (README, issue 10)."""
    return [EmbeddedText("passage", dense_text(p)) for p in passages] + [EmbeddedText("query", t) for p in passages for t in sentence_texts(p)]


def lexical_text(passage: Passage) -> str:
    """What BM25 matches for a passage: its article title and section, then its text."""
    return f"{passage.title}\n{passage.section}\n{without_footnotes(passage.text)}"


@dataclass(frozen=True)
class BuildReport:
    """What a build did."""

    folder: Path | str  # or a database location (without password)
    documents: int
    passages: int
    embedded: int  # texts (passages and sentences) embedded by this build
    reused: int  # texts whose embedding was taken from the previous build
    skipped: tuple[str, ...]  # unreadable corpus files, one message each
    seconds: float


def build_index(
    corpus: Corpus, settings: Settings, embedder, progress: Progress | None = None, full: bool = False
) -> BuildReport:
    """Parse, split, embed and write a new build, then make it current in one rename.

    Texts already embedded by the current build (same model, same text) reuse their vectors
    unless ``full``. Only one build runs at a time per index folder (a lock file); a second
    one waits for it. If anything fails, the previous build stays current.
    """
    started = time.perf_counter()
    passages = corpus_passages(corpus, settings)
    texts = embedded_texts(passages)
    root = settings.index
    root.mkdir(parents=True, exist_ok=True)
    with build_lock(root):
        _remove_leftovers(root)
        previous = None if full else _previous_build(root, settings)
        old_rows = {} if previous is None else previous.rows
        reused = {i: old_rows[text.key] for i, text in enumerate(texts) if text.key in old_rows}
        missing = [i for i in range(len(texts)) if i not in reused]
        dimension = previous.dimension if previous else embedder.get_embedding_dimension()
        with staged_build(root, len(passages), len(texts) - len(passages), dimension) as stage:
            _embed_into(stage, embedder, texts, missing, progress)
            if previous is not None:
                previous.copy_into(stage, reused, settings.build_batch)
            manifest = new_manifest(settings, int(dimension), corpus.files, len(corpus.documents), len(passages))
            folder = stage.finish(manifest, corpus.documents, passages, settings)
    return BuildReport(
        folder, len(corpus.documents), len(passages), len(missing), len(reused), corpus.skipped,
        time.perf_counter() - started,
    )


def new_manifest(settings: Settings, dimension: int, corpus_files: dict[str, str], documents: int, passages: int) -> Manifest:
    """The manifest of a build (its file sizes and FAISS index are filled in when it is written)."""
    return Manifest(
        format_version=FORMAT_VERSION,
        model=settings.model,
        dimension=dimension,
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        corpus_files=corpus_files,
        documents=documents,
        passages=passages,
        built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )


class StagedBuild:
    """A build being written: memory-mapped vector files to fill, then ``finish`` to switch to it.

    Text rows ``0..passages-1`` are the passages' vectors, the next ones their sentences', in order."""

    def __init__(self, root: Path, passages: int, sentences: int, dimension: int) -> None:
        self.root = root
        name = f"build-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
        self.build = root / name
        self.staging = root / f".{name}.partial"
        self.staging.mkdir()
        open_map = np.lib.format.open_memmap
        self.passage_vectors = open_map(self.staging / PASSAGE_VECTORS, "w+", np.float32, (passages, dimension))
        self.sentence_vectors = open_map(self.staging / "sentences.npy", "w+", np.float32, (sentences, dimension))

    def put(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Store vectors at text rows (passages first, then sentences)."""
        count = len(self.passage_vectors)
        in_passages = rows < count
        self.passage_vectors[rows[in_passages]] = vectors[in_passages]
        self.sentence_vectors[rows[~in_passages] - count] = vectors[~in_passages]

    def finish(self, manifest: Manifest, documents, passages: list[Passage], settings: Settings) -> Path:
        """Write FAISS, BM25, passages and manifest, flush everything to disk, rename the
        staging folder and switch CURRENT to it; older builds are removed."""
        staging = self.staging
        index, description = add_in_batches(self.passage_vectors, settings)
        faiss.write_index(index, str(staging / "vectors.faiss"))
        del index
        self.sentence_vectors.flush()
        self.passage_vectors = self.sentence_vectors = None  # close the maps before the rename
        (staging / PASSAGE_VECTORS).unlink()
        LexicalIndex.build(lexical_text(p) for p in passages).save(staging / "lexical")
        _write_json(staging / "passages.json", _passages_payload(documents, passages), indent=None)
        sizes = {p.relative_to(staging).as_posix(): p.stat().st_size for p in staging.rglob("*") if p.is_file()}
        _write_json(staging / "manifest.json", asdict(replace(manifest, files=sizes, vector_index=description)))
        _sync_folder(staging)
        staging.rename(self.build)
        _switch_current(self.root, self.build.name)
        _remove_old_builds(self.root, keep=self.build.name)
        return self.build


@contextmanager
def staged_build(root: Path, passages: int, sentences: int, dimension: int):
    """A StagedBuild whose staging folder is removed on the way out, finished or not."""
    stage = StagedBuild(root, passages, sentences, dimension)
    try:
        yield stage
    finally:
        stage.passage_vectors = stage.sentence_vectors = None
        shutil.rmtree(stage.staging, ignore_errors=True)


def vector_index(dimension: int, count: int, settings: Settings) -> tuple[faiss.Index, dict]:
    """The FAISS index for ``count`` passage vectors and its description for the manifest:
    exact inner product up to ``settings.ann_threshold`` passages, HNSW above."""
    description = vector_index_description(count, settings)
    if description["type"] == "flat":
        return faiss.IndexFlatIP(dimension), description
    index = faiss.IndexHNSWFlat(dimension, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = settings.hnsw_ef_construction
    index.hnsw.efSearch = settings.hnsw_ef_search
    return index, description


def add_in_batches(vectors: np.ndarray, settings: Settings) -> tuple[faiss.Index, dict]:
    """A FAISS index of ``vectors`` (a memory map), added a batch at a time."""
    index, description = vector_index(vectors.shape[1], len(vectors), settings)
    for start in range(0, len(vectors), settings.build_batch):
        index.add(np.ascontiguousarray(vectors[start : start + settings.build_batch]))
    return index, description


@contextmanager
def build_lock(root: Path):
    """Hold the index folder's build lock, waiting for a build already running to finish."""
    with open(root / LOCK, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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


@dataclass
class _PreviousBuild:
    """The vectors of the current build, found by text: reused by an incremental build."""

    index: SearchIndex
    rows: dict[str, int]  # text hash → text row (passages first, then sentences)
    dimension: int

    def vectors(self, rows: np.ndarray) -> np.ndarray:
        """The vectors at text rows, passage rows first (as ``copy_into`` sorts them)."""
        count = len(self.index.passages)
        in_passages = rows < count
        passage_vectors = self.index.vectors.reconstruct_batch(rows[in_passages]).reshape(-1, self.dimension)
        return np.vstack([passage_vectors, self.index.sentence_matrix[rows[~in_passages] - count]])

    def copy_into(self, stage: StagedBuild, reused: dict[int, int], batch: int) -> None:
        """Copy the vectors of reused texts (new row → old row) into a new build, a batch at a time."""
        pairs = sorted(reused.items(), key=lambda pair: pair[1])
        for start in range(0, len(pairs), batch):
            new, old = (np.array(column) for column in zip(*pairs[start : start + batch]))
            stage.put(new, self.vectors(old))


def _previous_build(root: Path, settings: Settings) -> _PreviousBuild | None:
    """The current build, when it was made with the same model and can be read (None otherwise:
    the build then embeds everything)."""
    try:
        index = load_index(root)
    except IndexUnusableError:
        return None
    if index.manifest.model != settings.model:
        return None
    rows = {text.key: row for row, text in enumerate(embedded_texts(index.passages))}
    return _PreviousBuild(index, rows, index.manifest.dimension)


def load_index(root: Path) -> SearchIndex:
    """Load the current build of the index folder, or raise an IndexUnusableError that says why."""
    folder = current_build(root)
    try:
        manifest = _read_manifest(folder)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise IndexUnusableError(f"the index in {folder} is unreadable ({error}); rebuild it with `python -m qa build`") from error
    if problem := format_problem(folder, manifest):
        raise IncompatibleIndexError(problem)
    try:
        payload = json.loads((folder / "passages.json").read_text("utf-8"))
        passages = _passages_from_json(payload["passages"])
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


def document_rows(passages: list[Passage]) -> dict[str, tuple[int, int]]:
    """Each document's rows: a build writes the passages of a document one after the other."""
    rows: dict[str, tuple[int, int]] = {}
    for row, passage in enumerate(passages):
        first, _ = rows.get(passage.doc_id, (row, row))
        rows[passage.doc_id] = (first, row + 1)
    return rows


def _read_manifest(folder: Path) -> Manifest:
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


@dataclass(frozen=True)
class IndexStatus:
    """What `qa status` and the app's sidebar show, read from the manifest alone."""

    folder: Path | str  # or a database location (without password)
    exists: bool
    building: bool
    problem: str | None = None  # why the index cannot be used, if it cannot
    manifest: Manifest | None = None
    stale: tuple[str, ...] = ()  # why it no longer matches the corpus and settings


def index_status(settings: Settings) -> IndexStatus:
    """The state of the index folder, without loading the index itself."""
    root = settings.index
    building = root.is_dir() and is_building(root)
    try:
        folder = current_build(root)
        manifest = _read_manifest(folder)
    except MissingIndexError as error:
        return IndexStatus(root, False, building, str(error))
    except (IndexUnusableError, OSError, ValueError, TypeError) as error:
        return IndexStatus(root, True, building, f"the index in {root} is unreadable ({error}); rebuild it")
    if problem := format_problem(root, manifest):
        return IndexStatus(root, True, building, problem, manifest)
    return IndexStatus(root, True, building, None, manifest, tuple(stale_reasons(manifest, settings)))


def _embed_into(stage: StagedBuild, embedder, texts: list[EmbeddedText], rows: list[int], progress: Progress | None) -> None:
    """Embed the texts at ``rows``, a batch at a time, straight into the build's vector files."""
    for batch, vectors in embed_batches(embedder, texts, rows, progress):
        stage.put(batch, vectors)


def _passages_payload(documents: tuple[Document, ...], passages: list[Passage]) -> dict:
    return {
        "documents": [
            {"doc_id": d.doc_id, "title": d.title, "references": {n: r.text for n, r in d.references.items()}}
            for d in documents
        ],
        "passages": {f.name: _column([getattr(p, f.name) for p in passages]) for f in fields(Passage)},
    }


def _column(values: list) -> dict:
    """One field of every passage, laid out to parse fast: repeated strings (document, title,
    section, kind) as a table of distinct values and one code per passage, tuples (footnotes,
    sentence spans, sentence footnotes) flattened with one length per passage, their items
    themselves as a column when they are tuples; anything else as a plain list."""
    if values and all(isinstance(v, str) for v in values):
        distinct = list(dict.fromkeys(values))
        if len(distinct) <= len(values) // 2:
            code = {value: number for number, value in enumerate(distinct)}
            return {"categories": distinct, "codes": [code[v] for v in values]}
    if values and all(isinstance(v, tuple) for v in values):
        items = [item for value in values for item in value]
        nested = bool(items) and all(isinstance(item, tuple) for item in items)
        return {"lengths": [len(v) for v in values], "items": _column(items) if nested else items}
    return {"values": values}


def _column_values(column: dict) -> list:
    """The per-passage values of a column written by ``_column``."""
    if "values" in column:
        return column["values"]
    if "categories" in column:
        categories = column["categories"]
        return [categories[code] for code in column["codes"]]
    items = column["items"]
    items = iter(_column_values(items) if isinstance(items, dict) else items)
    return [tuple(islice(items, length)) for length in column["lengths"]]


def _passages_from_json(columns: dict) -> list[Passage]:
    """The passages of a ``passages.json`` (format 2: one column per field of Passage)."""
    names = [f.name for f in fields(Passage) if f.name in columns]
    values = [_column_values(columns[name]) for name in names]
    if names == [f.name for f in fields(Passage)]:
        return [Passage(*row) for row in zip(*values)]
    return [Passage(**dict(zip(names, row))) for row in zip(*values)]


def _write_json(path: Path, data: object, indent: int | None = 1) -> None:
    separators = None if indent else (",", ":")
    path.write_text(json.dumps(data, ensure_ascii=False, indent=indent, separators=separators), "utf-8")


def _sync_folder(folder: Path) -> None:
    """Flush a folder's files to disk, so that a crash after the switch finds them whole."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _switch_current(root: Path, build_name: str) -> None:
    pointer = root / f".{POINTER}.{os.getpid()}"
    with open(pointer, "w", encoding="utf-8") as handle:
        handle.write(build_name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(pointer, root / POINTER)


def _remove_leftovers(root: Path) -> None:
    """What a build killed half-way left behind: its staging folder and pointer file."""
    for path in root.glob(".build-*.partial"):
        shutil.rmtree(path, ignore_errors=True)
    for path in root.glob(f".{POINTER}.*"):
        path.unlink(missing_ok=True)


def _remove_old_builds(root: Path, keep: str) -> None:
    for folder in root.glob("build-*"):
        if folder.name != keep:
            shutil.rmtree(folder, ignore_errors=True)
