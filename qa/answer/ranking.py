"""The small linear models that rank candidate sentences, the logistic ones that give a
probability (the confidence models, the conversation's carried words), and how their JSON files
are read.

The sentence model (``qa/models/sentence_model.json``) weighs the candidates' signals
(``qa.answer.candidates.FEATURES``); the choice model (in the reader's folder) weighs them with
the reader's (``qa.answer.reading.READER_FEATURES``). Both are trained listwise by
``python -m qa train-selector`` (``qa.train.sentence``); a file records the signals it was trained
on, and one trained on others is refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SENTENCE_MODEL = Path(__file__).parent.parent / "models" / "sentence_model.json"


@dataclass(frozen=True)
class SentenceModel:
    """Feature standardisation and weights; a candidate's score is their dot product."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray

    def scores(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.scale) @ self.weights

    @classmethod
    def load(cls, path: Path, features: tuple[str, ...]) -> "SentenceModel":
        data = read_weights(path, "features", features, "train-selector")
        return cls(*(np.array(data[key]) for key in ("mean", "scale", "weights")))


@dataclass(frozen=True)
class LogisticModel:
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def probability(self, signals: np.ndarray) -> np.ndarray:
        return 1 / (1 + np.exp(-(((signals - self.mean) / self.scale) @ self.weights + self.bias)))

    @classmethod
    def from_json(cls, data: dict) -> "LogisticModel":
        return cls(np.array(data["mean"]), np.array(data["scale"]), np.array(data["weights"]), float(data["bias"]))

    def to_json(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "weights": self.weights.tolist(), "bias": self.bias}


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
