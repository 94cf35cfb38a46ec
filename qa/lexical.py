"""Lexical retrieval: BM25 (bm25s) over French-stemmed, accent- and case-folded words."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import bm25s
import numpy as np
import Stemmer

from qa.text import fold, without_footnotes

_WORD = re.compile(r"\w+")
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


class LexicalIndex:
    """A BM25 index over passage texts, saved as bm25s's own npy/json files (no pickle)."""

    def __init__(self, model: bm25s.BM25) -> None:
        self.model = model

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

    @classmethod
    def load(cls, folder: Path) -> "LexicalIndex":
        return cls(bm25s.BM25.load(str(folder), show_progress=False))

    def knows(self, term: str) -> bool:
        """Whether a term occurs in the indexed passages."""
        return term in self.model.vocab_dict

    def top(self, query_terms: list[str], width: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows and BM25 scores of the ``width`` best passages (among ``allowed`` rows, if
        given), best first. Only the postings of the query's terms are read: the cost grows
        with how many passages hold them, not with the size of the corpus."""
        vocabulary, matrix = self.model.vocab_dict, self.model.scores
        ids = [vocabulary[t] for t in query_terms if t in vocabulary]
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        indptr, indices, data = matrix["indptr"], matrix["indices"], matrix["data"]
        rows = np.concatenate([indices[indptr[i] : indptr[i + 1]] for i in ids])
        weights = np.concatenate([data[indptr[i] : indptr[i + 1]] for i in ids])
        rows, where = np.unique(rows, return_inverse=True)
        scores = np.bincount(where, weights=weights).astype(np.float32)
        if allowed is not None:
            keep = np.isin(rows, allowed)
            rows, scores = rows[keep], scores[keep]
        if width < len(rows):
            best = np.argpartition(-scores, width - 1)[:width]
            rows, scores = rows[best], scores[best]
        order = np.argsort(-scores, kind="stable")
        return rows[order].astype(np.int64), scores[order]
