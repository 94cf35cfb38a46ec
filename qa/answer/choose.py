"""The choose stage: the answering sentence among the candidates, and its short answer.

Without a reader the sentence model's ranking decides and there is no short answer. With one, a
second linear model (the choice model, trained on the reader's scores: ``qa/models/reader/``)
weighs the candidates' signals with the reader's, and the short answer is the reader's best span
inside the chosen sentence.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa.answer.candidates import FEATURES, Candidates
from qa.answer.ranking import SentenceModel
from qa.answer.reading import READER_FEATURES, Readings

CHOICE_MODEL = "choice_model.json"  # in the reader's folder: trained on its scores
CHOICE_FEATURES = FEATURES + READER_FEATURES


@dataclass(frozen=True)
class Choice:
    hit: int  # the chosen sentence's passage, in retrieval.hits
    span: tuple[int, int]  # the sentence in the passage's text
    answer: tuple[int, int] | None  # the short answer in the passage's text (None: no reader)
    signals: dict[str, float]  # the chosen sentence's signals (FEATURES, and READER_FEATURES with a reader)
    certainty: float  # the deciding model's softmax probability for it, among the candidates


def choice_features(found: Candidates, readings: Readings | None) -> np.ndarray:
    """What the choice weighs: the candidates' signals, and the reader's when it read."""
    return found.features if readings is None else np.hstack([found.features, readings.features])


def choose(found: Candidates, readings: Readings | None, choice_model: SentenceModel | None) -> Choice:
    """The candidate that best answers, and its short answer (with a reader)."""
    features = choice_features(found, readings)
    scores = found.scores if readings is None else choice_model.scores(features)
    row = int(np.argmax(scores))
    best, certainty = found.found[row], float(1 / np.exp(scores - scores[row]).sum())
    signals = dict(zip(CHOICE_FEATURES, map(float, features[row])))
    answer = None if readings is None else readings.short_answer(best)
    return Choice(best.hit, best.span, answer, signals, certainty)
