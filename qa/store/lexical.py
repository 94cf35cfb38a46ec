"""Lexical retrieval: BM25 (bm25s) over French-stemmed, accent- and case-folded words."""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import bm25s
import numpy as np
import Stemmer

from qa.ingest.text import fold, without_footnotes

_WORD = re.compile(r"\w+")
IMPACT_ORDER = "impact_order.npy"  # saved beside bm25s's files: each term's postings by weight
# Above this many postings for a query, the top is found by the threshold algorithm.
EXHAUSTIVE_POSTINGS = 20_000
# Folded French function words: they match everywhere and only add noise to BM25.
FRENCH_STOPWORDS = frozenset(
    fold(w)
    for w in """a au aux avec ce ces cet cette dans de des du elle elles en est et etait il ils
    je l la le les leur leurs lui mais me meme mes moi mon ne nos notre nous on ou par pas pour
    qu que qui quel quelle quels quelles quand comment combien pourquoi sa sans se ses son sont
    sur ta te tes toi ton tu un une vos votre vous d s c n j m t y ete etre avoir a-t-il a-t-elle
    est-ce ceci cela ca dont ont fait faire""".split()
)


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("french")


def terms(text: str) -> list[str]:
    """The BM25 terms of a text: folded, stop words dropped, stemmed."""
    words = [w for w in _WORD.findall(fold(without_footnotes(text))) if w not in FRENCH_STOPWORDS]
    return _stemmer().stemWords(words)


def term_weight(document_frequency: int, passages: int) -> float:
    """A term's inverse document frequency, as BM25 weighs it: rare terms weigh more."""
    return math.log(1 + (passages - document_frequency + 0.5) / (document_frequency + 0.5))


class LexicalIndex:
    """A BM25 index over passage texts, saved as bm25s's own npy/json files (no pickle)."""

    def __init__(self, model: bm25s.BM25) -> None:
        self.model = model
        self._impact_order: np.ndarray | None = None

    @classmethod
    def build(cls, texts: Iterable[str]) -> "LexicalIndex":
        """Index texts (read one at a time): each is kept as term ids, not term strings, so a
        million passages fit in memory."""
        vocabulary: dict[str, int] = {}
        ids = [[vocabulary.setdefault(term, len(vocabulary)) for term in terms(text)] for text in texts]
        model = bm25s.BM25(k1=1.2, b=0.75)
        model.index((ids, vocabulary), show_progress=False)
        return cls(model)

    def save(self, folder: Path) -> None:
        self.model.save(str(folder), show_progress=False)
        np.save(folder / IMPACT_ORDER, self.impact_order, allow_pickle=False)

    @classmethod
    def load(cls, folder: Path) -> "LexicalIndex":
        index = cls(bm25s.BM25.load(str(folder), show_progress=False))
        if (folder / IMPACT_ORDER).is_file():
            index._impact_order = np.load(folder / IMPACT_ORDER, mmap_mode="r", allow_pickle=False)
        return index

    @property
    def impact_order(self) -> np.ndarray:
        """For each term, the positions of its postings from the highest BM25 weight down
        (offsets inside the term's slice of the postings), computed once."""
        if self._impact_order is None:
            matrix = self.model.scores
            indptr, data = matrix["indptr"], matrix["data"]
            term_of = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
            order = np.lexsort((-data, term_of))  # by term, then weight descending
            self._impact_order = (order - indptr[term_of]).astype(np.int32)
        return self._impact_order

    def document_frequency(self, term: str) -> int:
        """How many indexed passages contain the term."""
        term_id = self.model.vocab_dict.get(term)
        indptr = self.model.scores["indptr"]
        return 0 if term_id is None else int(indptr[term_id + 1] - indptr[term_id])

    def top(self, query_terms: list[str], width: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows and BM25 scores of the ``width`` best passages (among ``allowed`` rows, if
        given), best first. Only the postings of the query's terms are read, and of those,
        when they are many, only the best-weighted ones that can still change the top
        (``_threshold_top``): the cost grows with the top's depth in the postings, not with
        the size of the corpus."""
        vocabulary, indptr = self.model.vocab_dict, self.model.scores["indptr"]
        ids, counts = np.unique([vocabulary[t] for t in query_terms if t in vocabulary], return_counts=True)
        if not len(ids):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if allowed is None and int((indptr[ids + 1] - indptr[ids]).sum()) > EXHAUSTIVE_POSTINGS:
            rows, scores = self._threshold_top(ids, counts, width)
        else:
            rows, scores = self._exhaustive_top(ids, counts, width, allowed)
        order = np.argsort(-scores, kind="stable")
        return rows[order].astype(np.int64), scores[order]

    def _exhaustive_top(self, ids: np.ndarray, counts: np.ndarray, width: int, allowed: np.ndarray | None):
        """Every posting of the terms summed per passage; the ``width`` best (unordered)."""
        indptr, indices, data = (self.model.scores[key] for key in ("indptr", "indices", "data"))
        rows = np.concatenate([indices[indptr[i] : indptr[i + 1]] for i in ids])
        weights = np.concatenate([data[indptr[i] : indptr[i + 1]] * n for i, n in zip(ids, counts)])
        rows, where = np.unique(rows, return_inverse=True)
        scores = np.bincount(where, weights=weights).astype(np.float32)
        if allowed is not None:
            keep = np.isin(rows, allowed)
            rows, scores = rows[keep], scores[keep]
        if width < len(rows):
            best = np.argpartition(-scores, width - 1)[:width]
            rows, scores = rows[best], scores[best]
        return rows, scores

    def _threshold_top(self, ids: np.ndarray, counts: np.ndarray, width: int):
        """The exact ``width`` best passages (unordered), reading each term's postings from
        its highest weight down (Fagin's threshold algorithm): the passages met in the first
        ``depth`` postings of any term get their exact score (each term's weight found by
        binary search in its row-sorted postings); a passage not met yet can score at most the
        sum of the weights at ``depth``; once the ``width``-th best exact score reaches that
        bound the top is final, otherwise ``depth`` grows four times."""
        indptr, indices, data = (self.model.scores[key] for key in ("indptr", "indices", "data"))
        order = self.impact_order
        starts, lengths = indptr[ids], indptr[ids + 1] - indptr[ids]
        depth = max(4 * width, 256)
        while True:
            met = np.unique(np.concatenate([indices[s + order[s : s + min(depth, n)]] for s, n in zip(starts, lengths)]))
            scores = np.zeros(len(met), dtype=np.float64)
            for s, n, count in zip(starts, lengths, counts):
                postings = indices[s : s + n]
                found = np.minimum(np.searchsorted(postings, met), n - 1)
                scores += np.where(postings[found] == met, data[s + found], 0.0) * count
            bound = sum(float(data[s + order[s + depth]]) * count for s, n, count in zip(starts, lengths, counts) if depth < n)
            complete = depth >= lengths.max()
            if complete or (len(met) >= width and np.partition(scores, len(met) - width)[len(met) - width] >= bound):
                break
            depth *= 2
        scores = scores.astype(np.float32)
        if width < len(met):
            best = np.argpartition(-scores, width - 1)[:width]
            met, scores = met[best], scores[best]
        return met, scores
