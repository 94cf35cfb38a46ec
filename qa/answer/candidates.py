"""The answering sentence, chosen among the sentences of the top passages by a small linear model.

Each candidate sentence is described by a few signals: its own cosine to the question, the
fused score of its passage, how much of the question's terms it carries (each term weighed by
its rarity, and in order), what its neighbours carry, how much it says besides, and whether it
holds the kind of answer the question asks for. A linear model weighs them; it is trained
listwise (softmax over the candidates of a question) on development questions whose answer is
known, and checked on articles it was not trained on (``python -m qa train-selector``). Its
weights are a small JSON file, ``qa/models/sentence_model.json``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.store.lexical import terms
from qa.answer.question_types import answer_type_fit, names_new_to
from qa.answer.retrieve import Retrieval
from qa.ingest.text import squash_spaces

MODEL_FILE = Path(__file__).parent.parent / "models" / "sentence_model.json"
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


def candidates(retrieval: Retrieval) -> tuple[list[Candidate], np.ndarray]:
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
class SentenceModel:
    """Feature standardisation and weights; a candidate's score is their dot product."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray

    def scores(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.scale) @ self.weights

    def choose(self, retrieval: Retrieval) -> Candidate:
        """The sentence that best answers, among those of the top passages."""
        found, features = candidates(retrieval)
        return found[int(np.argmax(self.scores(features)))]

    def save(self, path: Path, features: tuple[str, ...] = FEATURES) -> None:
        data = {"features": list(features), "mean": self.mean.tolist(), "scale": self.scale.tolist(), "weights": self.weights.tolist()}
        path.write_text(json.dumps(data, indent=1) + "\n", "utf-8")

    @classmethod
    def load(cls, path: Path = MODEL_FILE, features: tuple[str, ...] = FEATURES) -> "SentenceModel":
        data = read_weights(path, "features", features, "train-selector")
        return cls(*(np.array(data[key]) for key in ("mean", "scale", "weights")))


def read_weights(path: Path, names_key: str, names: tuple[str, ...], command: str) -> dict:
    """A small model's JSON file, checked to be trained on ``names`` (its ``names_key``); a
    ValueError naming the ``python -m qa`` command that (re)trains it otherwise."""
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError as error:
        raise ValueError(f"no model at {path}: train it with `python -m qa {command}`") from error
    if tuple(data[names_key]) != names:
        raise ValueError(f"{path} was trained on other {names_key}; retrain it with `python -m qa {command}`")
    return data


def train(questions: list[tuple[np.ndarray, np.ndarray]], l2: float = 0.001, steps: int = 3000) -> SentenceModel:
    """Fit the weights on (features, is-answer labels) of each question: softmax over a
    question's candidates, cross-entropy against its answering sentences, L2 penalty; plain
    gradient descent with Adam on standardised features. Questions without an answering
    candidate teach nothing and are left out."""
    questions = [(x, y / y.sum()) for x, y in questions if y.any()]
    stacked = np.vstack([x for x, _ in questions])
    mean, scale = stacked.mean(0), stacked.std(0) + 1e-9
    groups = [((x - mean) / scale, y) for x, y in questions]
    weights = np.zeros(stacked.shape[1])
    moment, velocity = np.zeros_like(weights), np.zeros_like(weights)
    for step in range(1, steps + 1):
        gradient = 2 * l2 * weights
        for x, target in groups:
            logits = x @ weights
            p = np.exp(logits - logits.max())
            gradient -= x.T @ (target - p / p.sum()) / len(groups)
        moment = 0.9 * moment + 0.1 * gradient
        velocity = 0.999 * velocity + 0.001 * gradient**2
        weights -= 0.05 * (moment / (1 - 0.9**step)) / (np.sqrt(velocity / (1 - 0.999**step)) + 1e-8)
    return SentenceModel(mean, scale, weights)


@dataclass(frozen=True)
class Example:
    """One training question: its article, and its candidates' features and labels."""

    article: str
    features: np.ndarray
    labels: np.ndarray  # 1.0 where the candidate sentence contains the known answer


def example(retriever, question: str, answer: str, article: str, describe=candidates) -> Example | None:
    """The candidates of a question as the product sees them (``describe``: a retrieval → the
    candidates and their signals), labelled by the known answer."""
    retrieval = retriever.search(question, DEPTH)
    if not retrieval.hits:
        return None
    found, features = describe(retrieval)
    expected = squash_spaces(answer)
    texts = [retrieval.hits[c.hit].passage.text[c.span[0] : c.span[1]] for c in found]
    return Example(article, features, np.array([expected in squash_spaces(t) for t in texts], dtype=np.float64))


def accuracy(model: SentenceModel, examples: list[Example]) -> float:
    """Share of questions whose chosen sentence contains the answer."""
    return float(np.mean([e.labels[int(np.argmax(model.scores(e.features)))] for e in examples]))


def article_folds(articles: set[str], folds: int = 5, seed: int = 0) -> list[set[str]]:
    """The articles in ``folds`` groups (fewer if there are fewer articles), shuffled by ``seed``:
    each group in turn is left out of training."""
    order = sorted(articles)
    np.random.default_rng(seed).shuffle(order)
    count = min(folds, len(order))
    return [set(order[fold::count]) for fold in range(count)]


def cross_validate(examples: list[Example], folds: int = 5, seed: int = 0) -> np.ndarray:
    """For each example, whether a model trained without its article chooses a right sentence
    (NaN for all when there is a single article: nothing to leave out)."""
    right = np.full(len(examples), np.nan)
    groups = article_folds({e.article for e in examples}, folds, seed)
    for held_out in groups if len(groups) > 1 else ():
        model = train([(e.features, e.labels) for e in examples if e.article not in held_out])
        for i, e in enumerate(examples):
            if e.article in held_out:
                right[i] = e.labels[int(np.argmax(model.scores(e.features)))]
    return right
