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


class Retriever:
    """Searches one loaded index with one embedding model."""

    def __init__(self, index: SearchIndex, embedder, lexical_weight: float = LEXICAL_WEIGHT) -> None:
        self.index = index
        self.embedder = embedder
        self.lexical_weight = lexical_weight

    def embed_question(self, question: str) -> np.ndarray:
        vector = self.embedder.encode([question], prompt_name="query", normalize_embeddings=True, convert_to_numpy=True)
        return np.ascontiguousarray(vector, dtype=np.float32)

    def search(self, question: str, k: int) -> Retrieval:
        """The k best passages for the question."""
        index = self.index
        query_vector = self.embed_question(question)
        query = query_vector[0]
        width = min(index.vectors.ntotal, CANDIDATES)
        _, dense_rows = index.vectors.search(query_vector, width)
        bm25 = index.lexical.scores(question)
        lexical_rows = np.argpartition(-bm25, width - 1)[:width] if width < len(bm25) else np.arange(len(bm25))
        rows = np.union1d(dense_rows[0][dense_rows[0] >= 0], lexical_rows[bm25[lexical_rows] > 0])
        passage_cosine = index.vectors.reconstruct_batch(rows) @ query
        sentence_cosine = np.array([index.sentence_embeddings(row).dot(query).max() for row in rows])
        dense = (1 - SENTENCE_WEIGHT) * passage_cosine + SENTENCE_WEIGHT * sentence_cosine
        query_terms = tuple(terms(question))
        known = [t for t in query_terms if index.lexical.knows(t)]
        coverage = len(known) / len(query_terms) if query_terms else 0.0
        lexical = bm25[rows] / bm25.max() if bm25.max() > 0 else np.zeros(len(rows))
        fused = dense + self.lexical_weight * coverage * lexical
        best = np.argsort(-fused)[:k]
        hits = [
            Hit(index.passages[rows[i]], int(rows[i]), float(fused[i]), float(dense[i]), float(lexical[i]))
            for i in best
        ]
        return Retrieval(question, query, query_terms, coverage, hits)
