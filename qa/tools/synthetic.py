"""The synthetic corpus of `qa bench`: N passages recombined, with a seeded RNG, from the sentences
of a real index. A synthetic passage's vector is the normalised mean of its sentences' real
vectors plus small seeded noise; its sentences keep their real vectors (plus noise)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from qa.config import Settings
from qa.store.building import new_manifest
from qa.store.folder import SearchIndex
from qa.store.folder_build import staged_build
from qa.ingest.passages import Passage
from qa.ingest.text import footnotes_in


NOISE = 0.02  # per dimension (a norm of about 0.4): synthetic passages made of the same sentences stay distinct


def build_synthetic(source: SearchIndex, count: int, seed: int, settings: Settings) -> float:
    """Write an index of ``count`` synthetic passages recombined from ``source``; its seconds."""
    started = time.perf_counter()
    settings.index.mkdir(parents=True, exist_ok=True)
    sentences = 0
    with staged_build(settings.index, count, total_sentences(count, seed), source.manifest.dimension) as stage:
        passages: list[Passage] = []
        for batch, passage_vectors, sentence_vectors in synthetic_batches(source, count, seed, settings.build_batch):
            stage.passage_vectors[len(passages) : len(passages) + len(batch)] = passage_vectors
            stage.sentence_vectors[sentences : sentences + len(sentence_vectors)] = sentence_vectors
            passages += batch
            sentences += len(sentence_vectors)
        documents = tuple(source_documents(source))
        manifest = new_manifest(settings, source.manifest.dimension, {}, len(documents), count)
        stage.finish(manifest, documents, passages, settings)
    return time.perf_counter() - started


def total_sentences(count: int, seed: int) -> int:
    """How many sentences ``synthetic_batches`` makes for ``count`` passages."""
    return int(passage_lengths(np.random.default_rng(seed), count).sum())


def passage_lengths(rng: np.random.Generator, count: int) -> np.ndarray:
    """The sentence count of each synthetic passage: 1 to 5, the RNG's first draw for a seed."""
    return rng.integers(1, 6, size=count)


def synthetic_batches(source: SearchIndex, count: int, seed: int, batch_size: int):
    """``count`` synthetic passages of 1 to 5 sentences recombined from ``source``, with their
    vectors and their sentences' vectors, ``batch_size`` passages at a time (for either backend)."""
    sentences = [  # (passage, start, end, row of its vector) of every sentence of the source
        (passage, a, b, row)
        for position, passage in enumerate(source.passages)
        for row, (a, b) in enumerate(passage.sentences, source.sentence_rows[position])
    ]
    rng = np.random.default_rng(seed)
    lengths = passage_lengths(rng, count)
    picks = rng.integers(0, len(sentences), size=int(lengths.sum()))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        batch = picks[offsets[start] : offsets[stop]]
        sentence_vectors = noisy(np.asarray(source.sentence_matrix[[sentences[i][3] for i in batch]]), rng)
        means = np.add.reduceat(sentence_vectors, offsets[start:stop] - offsets[start])
        passages = [
            synthetic_passage(number, [sentences[i] for i in picks[offsets[number] : offsets[number + 1]]])
            for number in range(start, stop)
        ]
        yield passages, noisy(means, rng), sentence_vectors


def noisy(vectors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Vectors plus seeded Gaussian noise, normalised again."""
    vectors = vectors + rng.normal(0, NOISE, vectors.shape).astype(np.float32)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def synthetic_passage(number: int, sentences: list[tuple[Passage, int, int, int]]) -> Passage:
    """A passage made of these sentences (of real passages), in the document of the first."""
    first = sentences[0][0]
    parts = [p.text[a:b] for p, a, b, _ in sentences]
    spans, position = [], 0
    for part in parts:
        spans.append((position, position + len(part)))
        position += len(part) + 1
    text = " ".join(parts)
    return Passage(
        id=f"synthetic-{number}", doc_id=first.doc_id, title=first.title, section=first.section, kind="text",
        text=text, start=0, end=len(text), footnotes=footnotes_in(text), sentences=tuple(spans),
        sentence_footnotes=tuple(footnotes_in(part) for part in parts),
    )


@dataclass(frozen=True)
class _Reference:
    text: str


@dataclass(frozen=True)
class _Document:
    """What an index stores of a document, rebuilt from a loaded index's DocumentInfo."""

    doc_id: str
    title: str
    references: dict[int, _Reference]


def source_documents(source: SearchIndex) -> list[_Document]:
    return [_Document(d.doc_id, d.title, {n: _Reference(t) for n, t in d.references.items()}) for d in source.documents.values()]
