"""Retrieval: a question → the passages ranked by a fusion of dense (e5) and BM25 scores.

BM25 only helps when the question's words are the corpus's words: a French question about a
French article. Its weight is therefore scaled by the share of the question's terms that the
corpus knows (an English question matches few French stems, and BM25 then barely counts).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa.index import SearchIndex
from qa.lexical import terms
from qa.passages import Passage

# Weight of normalised BM25 against the dense cosine, at full term coverage (tuned on dev.jsonl).
LEXICAL_WEIGHT = 0.1


@dataclass(frozen=True)
class Hit:
    passage: Passage
    position: int  # row of the passage in the index
    score: float  # fused score used for ranking
    dense: float  # cosine similarity question ↔ passage
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
        query_vector = self.embed_question(question)
        total = self.index.vectors.ntotal
        dense_scores, dense_rows = self.index.vectors.search(query_vector, total)
        dense = np.empty(total, dtype=np.float32)
        dense[dense_rows[0]] = dense_scores[0]
        query_terms = tuple(terms(question))
        known = [t for t in query_terms if t in self.index.lexical.model.vocab_dict]
        coverage = len(known) / len(query_terms) if query_terms else 0.0
        bm25 = self.index.lexical.scores(question)
        lexical = bm25 / bm25.max() if bm25.max() > 0 else bm25
        fused = dense + self.lexical_weight * coverage * lexical
        order = np.argsort(-fused)[:k]
        hits = [
            Hit(self.index.passages[i], int(i), float(fused[i]), float(dense[i]), float(lexical[i])) for i in order
        ]
        return Retrieval(question, query_vector[0], query_terms, coverage, hits)
