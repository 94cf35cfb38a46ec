"""Writing an index folder: a build staged in a folder of its own, then made current in one rename.

Texts already embedded by the current build (same model, same text) reuse their vectors. Vectors
go straight into memory-mapped files of the staging folder as they are computed, and into FAISS
in batches, so a build of a million passages never holds all its vectors twice in RAM. Only one
build runs at a time per index folder (a lock file); a failed build leaves the previous one current.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import faiss
import numpy as np

from qa.config import Settings
from qa.ingest.corpus import Corpus
from qa.ingest.passages import Passage
from qa.store.building import BuildReport, EmbeddedText, Progress, corpus_passages, embed_batches, embedded_texts, lexical_text, new_manifest, vector_index_description
from qa.store.columns import passages_payload
from qa.store.contract import IndexUnusableError, Manifest
from qa.store.folder import LOCK, POINTER, SearchIndex, load_index
from qa.store.lexical import LexicalIndex
from qa.store.locking import exclusive

PASSAGE_VECTORS = ".passages.npy"  # the staging folder's passage vectors, until they are in FAISS


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
    with exclusive(root / LOCK):  # a build already running is waited for
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
            manifest = new_manifest(settings, int(dimension), corpus.files, len(corpus.documents), len(passages), corpus.skipped)
            folder = stage.finish(manifest, corpus.documents, passages, settings)
    return BuildReport(
        folder, len(corpus.documents), len(passages), len(missing), len(reused), corpus.skipped,
        time.perf_counter() - started,
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
        _write_json(staging / "passages.json", passages_payload(documents, passages), indent=None)
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


def _embed_into(stage: StagedBuild, embedder, texts: list[EmbeddedText], rows: list[int], progress: Progress | None) -> None:
    """Embed the texts at ``rows``, a batch at a time, straight into the build's vector files."""
    for batch, vectors in embed_batches(embedder, texts, rows, progress):
        stage.put(batch, vectors)


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
