"""How sure an answer is: whether the corpus answers at all, and the probability that the sentence
shown is right.

Two logistic models read the same few signals of an answer (the reader's margin for the chosen
sentence and its gap to the best one read, the choice model's certainty, the sentence's cosine,
its passage's score, the share of the question's weight it holds, the type of answer asked for,
the question's term coverage, names the corpus never mentions):

- ``answerable``: the probability that the corpus holds an answer; below ``threshold`` citeqa
  says the corpus does not answer (and still shows the closest passages), as it does when the
  sentence lacks the year, date or number asked for or the question names what the corpus never
  mentions;
- ``correct``: the probability that the sentence shown holds the answer: the confidence shown.

A logistic model is Platt scaling of a linear score: its output is a probability, checked for
calibration on questions left out of training (``python -m qa train-confidence``, folds by
article). Both are trained on development questions asked of a full index, asked of an index
without their own article (no passage holds their answer), and questions the corpus does not answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.answer.candidates import read_weights

CONFIDENCE_MODEL = "confidence_model.json"  # in the reader's folder: trained on its scores
SIGNALS = (
    "reader_margin", "reader_margin_gap", "reader_read", "certainty", "sentence_cosine", "passage_score",
    "weighted_share", "answer_type", "term_coverage", "unknown_names",
)
# The share of answerable questions that may be abstained on at most (the threshold is set to it
# on the training questions).
ABSTAINED_ANSWERABLE = 0.03


@dataclass(frozen=True)
class LogisticModel:
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def probability(self, signals: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(((signals - self.mean) / self.scale) @ self.weights + self.bias)))

    @classmethod
    def fit(cls, signals: np.ndarray, labels: np.ndarray, l2: float = 0.01, steps: int = 2000) -> "LogisticModel":
        """Weights minimising the log loss plus an L2 penalty, by gradient descent on standardised signals."""
        mean, scale = signals.mean(0), signals.std(0) + 1e-9
        x = (signals - mean) / scale
        weights, bias = np.zeros(x.shape[1]), 0.0
        for _ in range(steps):
            error = 1 / (1 + np.exp(-(x @ weights + bias))) - labels
            weights -= 0.5 * (x.T @ error / len(x) + l2 * weights)
            bias -= 0.5 * float(error.mean())
        return cls(mean, scale, weights, bias)

    def as_json(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "weights": self.weights.tolist(), "bias": self.bias}

    @classmethod
    def from_json(cls, data: dict) -> "LogisticModel":
        return cls(np.array(data["mean"]), np.array(data["scale"]), np.array(data["weights"]), float(data["bias"]))


@dataclass(frozen=True)
class ConfidenceModel:
    answerable: LogisticModel
    correct: LogisticModel
    threshold: float  # below this probability that the corpus answers, citeqa abstains

    def judge(self, signals: np.ndarray) -> tuple[bool, float]:
        """Whether to answer, and the probability that the sentence shown is right. Two vetoes
        stay above the model, as they are nearly always right: a sentence that lacks the year,
        date or number asked for, and a question naming what the corpus never mentions."""
        row = signals[None, :]
        vetoed = signals[SIGNALS.index("answer_type")] < 0 or signals[SIGNALS.index("unknown_names")] > 0
        answers = not vetoed and bool(self.answerable.probability(row)[0] >= self.threshold)
        return answers, float(self.correct.probability(row)[0])

    def save(self, path: Path) -> None:
        data = {"signals": list(SIGNALS), "answerable": self.answerable.as_json(), "correct": self.correct.as_json(),
                "threshold": self.threshold}
        path.write_text(json.dumps(data, indent=1) + "\n", "utf-8")

    @classmethod
    def load(cls, path: Path) -> "ConfidenceModel":
        data = read_weights(path, "signals", SIGNALS, "train-confidence")
        return cls(LogisticModel.from_json(data["answerable"]), LogisticModel.from_json(data["correct"]), float(data["threshold"]))


def fit_confidence(signals: np.ndarray, answerable: np.ndarray, correct: np.ndarray) -> ConfidenceModel:
    """Both models, and the threshold that abstains on ABSTAINED_ANSWERABLE of the answerable questions."""
    answers = LogisticModel.fit(signals, answerable)
    threshold = float(np.quantile(answers.probability(signals[answerable == 1]), ABSTAINED_ANSWERABLE))
    return ConfidenceModel(answers, LogisticModel.fit(signals, correct), threshold)


def reliability_table(probabilities: np.ndarray, right: np.ndarray, edges=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0)) -> list[dict]:
    """For each confidence bin: how many answers, their mean confidence, and the share right."""
    rows = []
    for low, high in zip(edges, edges[1:]):
        inside = (probabilities >= low) & ((probabilities < high) if high < 1 else (probabilities <= high))
        rows.append({"bin": f"{low:.1f}–{high:.1f}", "answers": int(inside.sum()),
                     "mean_confidence": round(float(probabilities[inside].mean()), 3) if inside.any() else None,
                     "share_right": round(float(right[inside].mean()), 3) if inside.any() else None})
    return rows
