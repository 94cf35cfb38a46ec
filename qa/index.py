"""The index on disk: a self-describing folder with the passages, FAISS vectors and BM25.

Layout of the index folder (``index/`` by default)::

    CURRENT                  name of the build in use (replaced atomically)
    build-<time>/manifest.json   model, dimension, splitting, corpus file hashes, format version
    build-<time>/passages.json   documents (title, references) and passages
    build-<time>/vectors.faiss   the passage embeddings (inner product = cosine)
    build-<time>/sentences.npy   one embedding per sentence of each passage, in passage order
    build-<time>/lexical/        the BM25 index (bm25s's npy/json files)

A build is written in a folder of its own, then ``CURRENT`` is switched to it in one rename, so
a failed or interrupted build leaves the previous one in use. Nothing is pickled.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import faiss
import numpy as np

from qa.config import Settings
from qa.corpus import Corpus, file_hashes
from qa.documents import Document
from qa.lexical import LexicalIndex
from qa.passages import Passage, passages_for
from qa.text import without_footnotes

FORMAT_VERSION = 1
POINTER = "CURRENT"
EMBED_BATCH = 32

Progress = Callable[[int, int], None]


class IndexUnusableError(RuntimeError):
    """The index cannot be used; the message says why and what to do."""


class MissingIndexError(IndexUnusableError):
    pass


class IncompatibleIndexError(IndexUnusableError):
    """The index was built with another model or dimension: it must be rebuilt."""


@dataclass(frozen=True)
class Manifest:
    format_version: int
    model: str
    dimension: int
    chunk_size: int
    chunk_overlap: int
    corpus_files: dict[str, str]
    passages: int
    built_at: str


@dataclass(frozen=True)
class DocumentInfo:
    """What answers need of a document besides its passages: title and reference texts."""

    doc_id: str
    title: str
    references: dict[int, str]


@dataclass
class SearchIndex:
    """A loaded index: everything retrieval needs, in memory."""

    folder: Path
    manifest: Manifest
    passages: list[Passage]
    documents: dict[str, DocumentInfo]
    vectors: faiss.Index
    lexical: LexicalIndex
    sentence_vectors: np.ndarray
    sentence_rows: np.ndarray  # first row of each passage's sentences in sentence_vectors

    def sentence_embeddings(self, position: int) -> np.ndarray:
        """The embeddings of the sentences of the passage at ``position``."""
        return self.sentence_vectors[self.sentence_rows[position] : self.sentence_rows[position + 1]]

    def reference(self, doc_id: str, number: int) -> str | None:
        return self.documents[doc_id].references.get(number)


def dense_text(passage: Passage) -> str:
    """What is embedded for a passage: its text without footnote markers."""
    return without_footnotes(passage.text)


def lexical_text(passage: Passage) -> str:
    """What BM25 matches for a passage: its article title and section, then its text.

    With the title, a question naming the article's subject finds its passages; in the
    embedded text the title made English questions worse (measured, see README)."""
    return f"{passage.title}\n{passage.section}\n{dense_text(passage)}"


def build_index(corpus: Corpus, settings: Settings, embedder, progress: Progress | None = None) -> Path:
    """Parse, split, embed and write a new build, then make it current. Returns its folder."""
    passages = [p for d in corpus.documents for p in passages_for(d, settings.chunk_size, settings.chunk_overlap)]
    if not passages:
        raise IndexUnusableError(f"no passages: the corpus folder {corpus.folder} has no readable article")
    sentences = [without_footnotes(p.text[a:b]) for p in passages for a, b in p.sentences]
    texts = [dense_text(p) for p in passages] + sentences
    embeddings = _embed(embedder, texts, progress)
    vectors, sentence_vectors = embeddings[: len(passages)], embeddings[len(passages) :]
    manifest = Manifest(
        format_version=FORMAT_VERSION,
        model=settings.model,
        dimension=int(vectors.shape[1]),
        chunk_size=settings.chunk_size,
        chunk_overlap=settings.chunk_overlap,
        corpus_files={Path(d.path).name: d.sha256 for d in corpus.documents},
        passages=len(passages),
        built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    root = settings.index
    root.mkdir(parents=True, exist_ok=True)
    build = root / f"build-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    staging = root / f".{build.name}.partial"
    staging.mkdir()
    try:
        flat = faiss.IndexFlatIP(manifest.dimension)
        flat.add(vectors)
        faiss.write_index(flat, str(staging / "vectors.faiss"))
        np.save(staging / "sentences.npy", sentence_vectors, allow_pickle=False)
        LexicalIndex.build([lexical_text(p) for p in passages]).save(staging / "lexical")
        _write_json(staging / "passages.json", _passages_payload(corpus.documents, passages))
        _write_json(staging / "manifest.json", asdict(manifest))
        staging.rename(build)
        _switch_current(root, build.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _remove_old_builds(root, keep=build.name)
    return build


def load_index(root: Path) -> SearchIndex:
    """Load the current build of the index folder, or raise an IndexUnusableError that says why."""
    folder = current_build(root)
    try:
        manifest = Manifest(**json.loads((folder / "manifest.json").read_text("utf-8")))
        payload = json.loads((folder / "passages.json").read_text("utf-8"))
        passages = [_passage_from_json(p) for p in payload["passages"]]
        documents = {
            d["doc_id"]: DocumentInfo(d["doc_id"], d["title"], {int(n): t for n, t in d["references"].items()})
            for d in payload["documents"]
        }
        vectors = faiss.read_index(str(folder / "vectors.faiss"))
        lexical = LexicalIndex.load(folder / "lexical")
        sentence_vectors = np.load(folder / "sentences.npy", allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as error:
        raise IndexUnusableError(f"the index in {folder} is unreadable ({error}); rebuild it with `python -m qa build`") from error
    if manifest.format_version != FORMAT_VERSION:
        raise IncompatibleIndexError(f"the index in {folder} has format {manifest.format_version}, not {FORMAT_VERSION}; rebuild it")
    if vectors.ntotal != len(passages) or vectors.d != manifest.dimension:
        raise IndexUnusableError(f"the index in {folder} is inconsistent ({vectors.ntotal} vectors for {len(passages)} passages); rebuild it")
    sentence_rows = np.concatenate([[0], np.cumsum([len(p.sentences) for p in passages])])
    if sentence_rows[-1] != len(sentence_vectors):
        raise IndexUnusableError(f"the index in {folder} has sentence vectors that do not match its passages; rebuild it")
    return SearchIndex(folder, manifest, passages, documents, vectors, lexical, sentence_vectors, sentence_rows)


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


def check_compatible(index: SearchIndex, settings: Settings, dimension: int) -> None:
    """Refuse an index built with another model or dimension than the one loaded."""
    if index.manifest.model != settings.model or index.manifest.dimension != dimension:
        raise IncompatibleIndexError(
            f"the index in {index.folder} was built with model {index.manifest.model!r} "
            f"({index.manifest.dimension} dimensions), not {settings.model!r} ({dimension}); "
            "rebuild it with `python -m qa build`"
        )


def stale_reasons(index: SearchIndex, settings: Settings) -> list[str]:
    """Why the index no longer matches the corpus and settings (empty when it is up to date)."""
    reasons = []
    current = file_hashes(settings.corpus)
    built = index.manifest.corpus_files
    reasons += [f"{name} changed" for name in sorted(current.keys() & built.keys()) if current[name] != built[name]]
    reasons += [f"{name} added" for name in sorted(current.keys() - built.keys())]
    reasons += [f"{name} removed" for name in sorted(built.keys() - current.keys())]
    if (index.manifest.chunk_size, index.manifest.chunk_overlap) != (settings.chunk_size, settings.chunk_overlap):
        reasons.append("splitting settings changed")
    return reasons


def _embed(embedder, texts: list[str], progress: Progress | None) -> np.ndarray:
    chunks = []
    for start in range(0, len(texts), EMBED_BATCH):
        batch = texts[start : start + EMBED_BATCH]
        chunks.append(embedder.encode(batch, prompt_name="passage", normalize_embeddings=True, convert_to_numpy=True))
        if progress:
            progress(min(start + EMBED_BATCH, len(texts)), len(texts))
    return np.ascontiguousarray(np.vstack(chunks), dtype=np.float32)


def _passages_payload(documents: tuple[Document, ...], passages: list[Passage]) -> dict:
    return {
        "documents": [
            {"doc_id": d.doc_id, "title": d.title, "references": {n: r.text for n, r in d.references.items()}}
            for d in documents
        ],
        "passages": [asdict(p) for p in passages],
    }


def _passage_from_json(data: dict) -> Passage:
    return Passage(
        **{**data, "footnotes": tuple(data["footnotes"]), "sentences": tuple(tuple(s) for s in data["sentences"])}
    )


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), "utf-8")


def _switch_current(root: Path, build_name: str) -> None:
    pointer = root / f".{POINTER}.{os.getpid()}"
    pointer.write_text(build_name + "\n", "utf-8")
    os.replace(pointer, root / POINTER)


def _remove_old_builds(root: Path, keep: str) -> None:
    for folder in root.glob("build-*"):
        if folder.name != keep:
            shutil.rmtree(folder, ignore_errors=True)
