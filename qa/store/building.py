"""What the builds of both backends share: the texts embedded for each passage, embedding them in
batches, the manifest, and what a build and a status report."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from qa.config import Settings
from qa.ingest.corpus import Corpus
from qa.ingest.passages import Passage, passages_for
from qa.ingest.text import without_footnotes
from qa.store.contract import IndexUnusableError, Manifest

# 2: passages.json in columns. 3: title and section in the embedded texts, sentences embedded
# with the query prompt and the sentence before them, sentence footnotes.
# 2: passages.json in columns. 3: title and section in the embedded texts, sentences embedded
# with the query prompt and the sentence before them, sentence footnotes.
FORMAT_VERSION = 3


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
    with "query: " on both sides, and a sentence is compared with a question (docs/measurements.md, issue 10)."""
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


def new_manifest(settings: Settings, dimension: int, corpus_files: dict[str, str], documents: int, passages: int,
                 skipped: tuple[str, ...] = ()) -> Manifest:
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
        skipped=tuple(skipped),
    )


def document_rows(passages: list[Passage]) -> dict[str, tuple[int, int]]:
    """Each document's rows: a build writes the passages of a document one after the other."""
    rows: dict[str, tuple[int, int]] = {}
    for row, passage in enumerate(passages):
        first, _ = rows.get(passage.doc_id, (row, row))
        rows[passage.doc_id] = (first, row + 1)
    return rows


@dataclass(frozen=True)
class IndexStatus:
    """What `qa status` and the app's sidebar show, read from the manifest alone."""

    folder: Path | str  # or a database location (without password)
    exists: bool
    building: bool
    problem: str | None = None  # why the index cannot be used, if it cannot
    manifest: Manifest | None = None
    stale: tuple[str, ...] = ()  # why it no longer matches the corpus and settings


Progress = Callable[[int, int], None]


# Texts handed to the model at once: it sorts them by length into batches of its own, so that
# texts of similar lengths are padded together (a quarter faster than 32 at a time).
EMBED_BATCH = 256


def corpus_passages(corpus: Corpus, settings: Settings) -> list[Passage]:
    """Every passage a build indexes, in row order; refuses a corpus without any."""
    passages = [p for d in corpus.documents for p in passages_for(d, settings.chunk_size, settings.chunk_overlap)]
    if not passages:
        raise IndexUnusableError(f"no passages: the corpus folder {corpus.folder} has no readable article")
    return passages


@dataclass(frozen=True)
class EmbeddedText:
    """A text a build embeds, with the model prompt it is embedded under ("passage" or "query")."""

    prompt: str
    text: str

    @property
    def key(self) -> str:
        """What identifies it between builds: the sha256 (hex) of its prompt and text."""
        return hashlib.sha256(f"{self.prompt}\n{self.text}".encode("utf-8")).hexdigest()


def embed_batches(embedder, texts: list[EmbeddedText], rows: list[int], progress: Progress | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The normalised embeddings of the texts at ``rows``, EMBED_BATCH at a time, as
    (rows, vectors) pairs, reporting progress as embedding starts and after each batch."""
    if progress and rows:
        progress(0, len(rows))
    for start in range(0, len(rows), EMBED_BATCH):
        chunk = rows[start : start + EMBED_BATCH]
        for prompt in dict.fromkeys(texts[i].prompt for i in chunk):
            batch = [i for i in chunk if texts[i].prompt == prompt]
            vectors = embedder.encode([texts[i].text for i in batch], prompt_name=prompt, normalize_embeddings=True, convert_to_numpy=True)
            yield np.array(batch, dtype=np.int64), np.asarray(vectors, dtype=np.float32)
        if progress:
            progress(min(start + EMBED_BATCH, len(rows)), len(rows))


def vector_index_description(count: int, settings: Settings) -> dict:
    """How ``count`` passage vectors are searched, as recorded in the manifest: exactly up to
    ``settings.ann_threshold`` passages, HNSW above (both backends)."""
    if count <= settings.ann_threshold:
        return {"type": "flat"}
    return {"type": "hnsw", "m": settings.hnsw_m, "ef_construction": settings.hnsw_ef_construction, "ef_search": settings.hnsw_ef_search}
