"""The candidate sentences: those of the top passages, each described by the signals the sentence
model weighs (``qa.answer.ranking``).

The signals: the sentence's own cosine to the question, the fused score of its passage, how much
of the question's terms it carries (each term weighed by its rarity, and in order), what its
neighbours carry, how much it says besides, and whether it holds the kind of answer the question
asks for. Besides them, the question's names that the corpus never mentions (a veto of the judge).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qa.answer.question_types import answer_type_fit, names_new_to
from qa.answer.ranking import SentenceModel
from qa.answer.retrieve import Retrieval
from qa.store.lexical import terms

# The passages whose sentences compete to answer.
DEPTH = 3
FEATURES = (
    "sentence_cosine",  # the sentence's cosine to the question
    "sentence_cosine_gap",  # … minus the best sentence cosine among the candidates
    "passage_score",  # the fused retrieval score of its passage
    "passage_score_gap",  # … minus the best passage's
    "passage_lexical",  # its passage's normalised BM25, times the question's term coverage
    "term_share",  # share of the question's terms found in the sentence
    "answer_type",  # +1 holds the year/date/number asked for, -1 lacks it, 0 nothing asked
    "new_names",  # a "qui/who" question and a name the question does not have (0 or 1)
    "weighted_share",  # share of the question's term weight (rare terms weigh more) in the sentence
    "pair_share",  # share of the question's pairs of consecutive terms found consecutive in the sentence
    "previous_share",  # weighted_share of the sentence before it in its passage (0 for the first)
    "next_share",  # … of the sentence after it (0 for the last)
    "new_terms",  # log(1 + the sentence's terms the question does not have): where an answer can be
    "length",  # log(1 + its length in characters)
    "opens_passage",  # 1 for the first sentence of its passage
    "weighted_share_gap",  # weighted_share minus the best among the candidates
)


@dataclass(frozen=True)
class Candidate:
    hit: int  # index of its passage in retrieval.hits
    span: tuple[int, int]  # the sentence in the passage's text
    sentence: int  # its index among the passage's sentences


def sentence_signals(retrieval: Retrieval) -> tuple[list[Candidate], np.ndarray]:
    """The sentences of the top DEPTH passages and their features, one row each."""
    hits = retrieval.hits[:DEPTH]
    question_terms = list(retrieval.query_terms)
    wanted = set(question_terms)
    pairs = set(zip(question_terms, question_terms[1:]))
    total_weight = sum(retrieval.term_weights.get(t, 0.0) for t in wanted) or 1.0

    def weighted_share(found: set[str]) -> float:
        return sum(retrieval.term_weights.get(t, 0.0) for t in wanted & found) / total_weight

    best_cosine = max(max(h.sentence_cosines) for h in hits)
    found, rows = [], []
    for number, hit in enumerate(hits):
        sentences = [hit.passage.text[a:b] for a, b in hit.passage.sentences]
        sentence_terms = [terms(sentence) for sentence in sentences]
        term_sets = [set(t) for t in sentence_terms]
        shares = [weighted_share(t) for t in term_sets]
        for j, (span, cosine, sentence, these, term_set) in enumerate(
            zip(hit.passage.sentences, hit.sentence_cosines, sentences, sentence_terms, term_sets)
        ):
            share = len(wanted & term_set) / len(wanted) if wanted else 0.0
            found.append(Candidate(number, span, j))
            rows.append([
                cosine, cosine - best_cosine, hit.score, hit.score - hits[0].score,
                hit.lexical * retrieval.term_coverage, share,
                answer_type_fit(retrieval.question, sentence), float(names_new_to(retrieval.question, sentence)),
                shares[j], len(pairs & set(zip(these, these[1:]))) / max(1, len(pairs)),
                shares[j - 1] if j > 0 else 0.0, shares[j + 1] if j + 1 < len(shares) else 0.0,
                math.log1p(len(term_set - wanted)), math.log1p(len(sentence)), float(j == 0), 0.0,
            ])
    features = np.array(rows, dtype=np.float64)
    features[:, -1] = features[:, FEATURES.index("weighted_share")] - features[:, FEATURES.index("weighted_share")].max()
    return found, features


@dataclass(frozen=True)
class Candidates:
    """The candidate sentences of a question, with their signals and the sentence model's scores."""

    found: list[Candidate]
    features: np.ndarray  # FEATURES, one row per candidate
    scores: np.ndarray  # the sentence model's score of each


def find_candidates(retrieval: Retrieval, model: SentenceModel) -> Candidates:
    """The candidates stage: the sentences of the top passages, their signals, and how the
    sentence model ranks them."""
    found, features = sentence_signals(retrieval)
    return Candidates(found, features, model.scores(features))
