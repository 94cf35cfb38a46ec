"""Retrieval: a question → the passages ranked by a fusion of dense (e5) and BM25 scores.

The dense score of a passage is the mean of its own cosine to the question and that of its best
sentence (a long passage's embedding dilutes the one sentence that answers). BM25 only helps
when the question's words are the corpus's words: its weight is scaled by the share of the
question's terms that the corpus knows, so an English question about a French article is
ranked by the dense model. Weights were chosen on dev.jsonl and checked on piaf-dev (README).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa.index import SearchIndex
from qa.lexical import terms
from qa.passages import Passage

# Weight of the best sentence's cosine in the dense score (the passage's own has the rest).
SENTENCE_WEIGHT = 0.5
# Weight of normalised BM25 against the dense score, at full term coverage.
LEXICAL_WEIGHT = 0.1
# Passages scored in full: the best of the dense search and of BM25.
CANDIDATES = 100


@dataclass(frozen=True)
class Hit:
    passage: Passage
    position: int  # row of the passage in the index
    score: float  # fused score used for ranking
    dense: float  # mean cosine similarity question ↔ passage and ↔ its best sentence
    lexical: float  # BM25 score divided by the best BM25 score of this question


@dataclass(frozen=True)
class Retrieval:
    question: str
    query_vector: np.ndarray
    query_terms: tuple[str, ...]
    term_coverage: float  # share of the question's terms found in the corpus vocabulary
    hits: list[Hit]


@dataclass(frozen=True)
class Candidates:
    """The passages worth scoring in full: the dense search's best and BM25's best."""

    question: str
    query: np.ndarray  # the question's embedding
    rows: np.ndarray  # sorted passage rows
    bm25: np.ndarray  # BM25 score of every passage (0 where no term matches)


class Retriever:
    """Searches one loaded index with one embedding model.

    The hot path, each step timed separately by ``qa bench``:
    ``embed_question`` → ``candidates`` (FAISS + BM25) → ``rank`` (fusion)."""

    def __init__(self, index: SearchIndex, embedder, lexical_weight: float = LEXICAL_WEIGHT) -> None:
        self.index = index
        self.embedder = embedder
        self.lexical_weight = lexical_weight

    def search(self, question: str, k: int) -> Retrieval:
        """The k best passages for the question."""
        return self.rank(self.candidates(question, self.embed_question(question)), k)

    def embed_question(self, question: str) -> np.ndarray:
        """The question's normalised embedding, shape (1, dimension)."""
        vector = self.embedder.encode([question], prompt_name="query", normalize_embeddings=True, convert_to_numpy=True)
        return np.ascontiguousarray(vector, dtype=np.float32)

    def candidates(self, question: str, query_vector: np.ndarray) -> Candidates:
        """The union of the dense search's and BM25's best CANDIDATES passages."""
        index = self.index
        width = min(index.vectors.ntotal, CANDIDATES)
        _, dense_rows = index.vectors.search(query_vector, width)
        bm25 = index.lexical.scores(question)
        lexical_rows = np.argpartition(-bm25, width - 1)[:width] if width < len(bm25) else np.arange(len(bm25))
        rows = np.union1d(dense_rows[0][dense_rows[0] >= 0], lexical_rows[bm25[lexical_rows] > 0])
        return Candidates(question, query_vector[0], rows, bm25)

    def rank(self, candidates: Candidates, k: int) -> Retrieval:
        """Fuse dense and BM25 scores of the candidates; the k best become hits."""
        index, rows, query, bm25 = self.index, candidates.rows, candidates.query, candidates.bm25
        passage_cosine = index.vectors.reconstruct_batch(rows) @ query
        dense = (1 - SENTENCE_WEIGHT) * passage_cosine + SENTENCE_WEIGHT * best_sentence_cosines(index, rows, query)
        query_terms = tuple(terms(candidates.question))
        known = [t for t in query_terms if index.lexical.knows(t)]
        coverage = len(known) / len(query_terms) if query_terms else 0.0
        best_bm25 = bm25.max()
        lexical = bm25[rows] / best_bm25 if best_bm25 > 0 else np.zeros(len(rows))
        fused = dense + self.lexical_weight * coverage * lexical
        best = np.argsort(-fused)[:k]
        hits = [
            Hit(index.passages[rows[i]], int(rows[i]), float(fused[i]), float(dense[i]), float(lexical[i]))
            for i in best
        ]
        return Retrieval(candidates.question, query, query_terms, coverage, hits)


def best_sentence_cosines(index: SearchIndex, rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """For each passage row, the best cosine of its sentences to the query: one gather from
    the (memory-mapped) sentence vectors and one matrix product, no loop over passages."""
    starts = index.sentence_rows[rows]
    lengths = index.sentence_rows[rows + 1] - starts
    offsets = np.cumsum(lengths) - lengths  # where each passage's sentences start in the gather
    sentence_rows = np.repeat(starts - offsets, lengths) + np.arange(lengths.sum())
    return np.maximum.reduceat(index.sentence_vectors[sentence_rows] @ query, offsets)
