"""Retrieval: a question → the passages ranked by a fusion of dense (e5) and BM25 scores.

The dense score of a passage is the mean of its own cosine to the question and that of its best
sentence (a long passage's embedding dilutes the one sentence that answers). BM25 only helps
when the question's words are the corpus's words: its weight is scaled by the share of the
question's terms that the corpus knows, so an English question about a French article is
ranked by the dense model. Weights were chosen on dev.jsonl and checked on piaf-dev (docs/measurements.md).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from qa.store.lexical import term_weight, terms
from qa.ingest.passages import Passage
from qa.store.contract import Articles, PassageStore

# Weight of the best sentence's cosine in the dense score (the passage's own has the rest).
SENTENCE_WEIGHT = 0.5
# Weight of normalised BM25 against the dense score, at full term coverage.
LEXICAL_WEIGHT = 0.05
# Passages scored in full: the best of the dense search and of BM25.
CANDIDATES = 100


@dataclass(frozen=True)
class Hit:
    passage: Passage
    row: int  # the passage's row in the store
    score: float  # fused score used for ranking
    dense: float  # mean cosine similarity question ↔ passage and ↔ its best sentence
    lexical: float  # BM25 score divided by the best BM25 score of this question
    sentence_cosines: tuple[float, ...]  # cosine of each of the passage's sentences to the question


@dataclass(frozen=True)
class Retrieval:
    question: str
    query_vector: np.ndarray
    query_terms: tuple[str, ...]
    term_coverage: float  # share of the question's terms found in the corpus vocabulary
    term_weights: dict[str, float]  # each question term's inverse document frequency (qa.lexical.term_weight)
    hits: list[Hit]


@dataclass(frozen=True)
class Candidates:
    """The passages worth scoring in full: the dense search's best and BM25's best."""

    question: str
    query: np.ndarray  # the question's embedding
    query_terms: tuple[str, ...]
    rows: np.ndarray  # sorted passage rows
    lexical: np.ndarray  # BM25 score of each row divided by the best BM25 score (0 if none)


class Retriever:
    """Searches one store with one embedding model.

    The hot path, each step timed separately by ``qa bench``:
    ``embed_question`` → ``candidates`` (dense + BM25 search) → ``rank`` (fusion).
    When the store allows it, BM25 runs on a worker thread while the dense search runs."""

    def __init__(self, store: PassageStore, embedder, lexical_weight: float = LEXICAL_WEIGHT) -> None:
        self.store = store
        self.embedder = embedder
        self.lexical_weight = lexical_weight
        self._lexical_worker = ThreadPoolExecutor(1, thread_name_prefix="bm25") if store.searches_in_parallel else None

    def search(self, question: str, k: int, articles: Articles = None) -> Retrieval:
        """The k best passages for the question (in the given articles only, if any)."""
        return self.rank(self.candidates(question, self.embed_question(question), articles), k)

    def embed_question(self, question: str) -> np.ndarray:
        """The question's normalised embedding, shape (dimension,)."""
        vector = self.embedder.encode([question], prompt_name="query", normalize_embeddings=True, convert_to_numpy=True)
        return np.ascontiguousarray(vector[0], dtype=np.float32)

    def candidates(self, question: str, query: np.ndarray, articles: Articles = None) -> Candidates:
        """The union of the dense search's and BM25's best CANDIDATES passages."""
        query_terms = tuple(terms(question))
        if self._lexical_worker is None:
            dense_rows = self.store.dense_search(query, CANDIDATES, articles)
            lexical_rows, bm25 = self.store.lexical_search(list(query_terms), CANDIDATES, articles)
        else:
            lexical = self._lexical_worker.submit(self.store.lexical_search, list(query_terms), CANDIDATES, articles)
            dense_rows = self.store.dense_search(query, CANDIDATES, articles)
            lexical_rows, bm25 = lexical.result()
        rows = np.union1d(dense_rows, lexical_rows)
        lexical = np.zeros(len(rows), dtype=np.float32)
        if len(bm25):
            lexical[np.searchsorted(rows, lexical_rows)] = bm25 / bm25[0]
        return Candidates(question, query, query_terms, rows, lexical)

    def rank(self, candidates: Candidates, k: int) -> Retrieval:
        """Fuse dense and BM25 scores of the candidates; the k best become hits."""
        store, rows, query = self.store, candidates.rows, candidates.query
        if not len(rows):
            return Retrieval(candidates.question, query, candidates.query_terms, 0.0, {}, [])
        passage_cosine = store.passage_vectors(rows) @ query
        sentence_vectors, offsets = store.sentence_vectors(rows)
        sentence_cosines = sentence_vectors @ query
        best_sentence = np.maximum.reduceat(sentence_cosines, offsets[:-1])
        dense = (1 - SENTENCE_WEIGHT) * passage_cosine + SENTENCE_WEIGHT * best_sentence
        query_terms = candidates.query_terms
        frequencies = store.document_frequencies(query_terms)
        coverage = sum(frequencies[t] > 0 for t in query_terms) / len(query_terms) if query_terms else 0.0
        weights = {t: term_weight(n, store.manifest.passages) for t, n in frequencies.items()}
        fused = dense + self.lexical_weight * coverage * candidates.lexical
        best = np.argsort(-fused, kind="stable")[:k]
        passages = store.passages_at(rows[best])
        hits = [
            Hit(passage, int(rows[i]), float(fused[i]), float(dense[i]), float(candidates.lexical[i]),
                tuple(float(c) for c in sentence_cosines[offsets[i] : offsets[i + 1]]))
            for passage, i in zip(passages, best)
        ]
        return Retrieval(candidates.question, query, query_terms, coverage, weights, hits)
