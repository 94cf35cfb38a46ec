"""Training the carry model (``python -m qa train-carry``): which earlier words a follow-up carries.

Each turn of the dialogue files is read after the turns before it, with the answers they were
given (the files' known answers), and each earlier word that ``earlier_words`` finds is labelled
carried when the turn's standalone form holds it (as a BM25 term: folded and stemmed). A logistic
model is fitted on those words, and the threshold is the one that gives the best F1 of the
carried words on the training turns. Its figures are held out by folds of dialogues: trained on
the other folds, measured on each.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.answer.conversation import CARRY_FEATURES, CarryModel, Turn, content_words, earlier_words
from qa.config import Settings
from qa.store.lexical import terms
from qa.tools.evaluate import Case, in_fold, read_cases, with_earlier_turns
from qa.train.confidence import fit_logistic

THRESHOLDS = tuple(np.round(np.arange(0.15, 0.66, 0.05), 2))
FOLDS = 2


@dataclass(frozen=True)
class Words:
    """The earlier words of many turns: what the model reads of each, and whether it is carried."""

    features: np.ndarray
    carried: np.ndarray  # 1.0 where the turn's standalone form holds the word


def labelled_words(cases: list[Case]) -> Words:
    """Every turn's earlier words, labelled by its standalone form (dialogue files, in order)."""
    rows, labels = [], []
    for case, history in with_earlier_turns(cases):
        standalone = {term for word in content_words(case.standalone) for term in terms(word)}
        for word in earlier_words(case.question, history):
            rows.append(word.features)
            labels.append(float(word.term in standalone))
        history.append(Turn(case.question, case.answer))
    return Words(np.vstack(rows) if rows else np.zeros((0, len(CARRY_FEATURES))), np.array(labels))


def carried_figures(model: CarryModel, words: Words) -> dict:
    """Precision, recall and F1 of the words the model carries, against the standalone forms."""
    chosen = model.logistic.probability(words.features) >= model.threshold
    right = float((chosen & (words.carried == 1)).sum())
    precision, recall = right / max(1, chosen.sum()), right / max(1, words.carried.sum())
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 3), "recall": round(recall, 3), "f1": round(f1, 3), "words": len(words.carried)}


def split(cases: list[Case], fold: int) -> tuple[list[Case], list[Case]]:
    """The turns of the dialogues outside fold ``fold`` of FOLDS, and those inside it (qa eval's folds)."""
    inside = {case.dialogue for case in in_fold(cases, fold, FOLDS)}
    return [c for c in cases if c.dialogue not in inside], [c for c in cases if c.dialogue in inside]


def fit_carry(words: Words) -> CarryModel:
    """The logistic model, with the threshold that gives the best F1 on the same words."""
    logistic = fit_logistic(words.features, words.carried)
    return max((CarryModel(logistic, float(t)) for t in THRESHOLDS), key=lambda m: carried_figures(m, words)["f1"])


def train_carry(files: list[Path], output: Path | None = None, leave_out: int | None = None) -> dict:
    """Fit the carry model on the dialogue files' turns (without fold ``leave_out`` of FOLDS,
    when given, so that `qa eval FILE --fold I/2` measures it held out) and write it; the
    summary holds each fold's held-out figures."""
    cases = [case for path in files for case in read_cases(path)]
    held_out = {}
    for fold in range(1, FOLDS + 1):
        trained_on, measured_on = split(cases, fold)
        held_out[f"fold {fold}"] = carried_figures(fit_carry(labelled_words(trained_on)), labelled_words(measured_on))
    model = fit_carry(labelled_words(cases if leave_out is None else split(cases, leave_out)[0]))
    summary = {
        "features": list(CARRY_FEATURES),
        "model": model.logistic.to_json(),
        "threshold": model.threshold,
        "trained_on": {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in files},
        "left_out_fold": None if leave_out is None else f"{leave_out}/{FOLDS}",
        "command": "python -m qa train-carry " + " ".join(str(p) for p in files) + ("" if leave_out is None else f" --leave-out {leave_out}"),
        "held_out_carried_words": held_out,
    }
    (output or Settings().carry_model).write_text(json.dumps(summary, indent=1) + "\n", "utf-8")
    return summary
