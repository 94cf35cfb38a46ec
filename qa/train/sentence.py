"""Training the answering-sentence model and the choice model (``python -m qa train-selector``).

Each development question is asked as the product asks it; its candidates' signals (with
``--reader``, the reader's too) are labelled by whether the sentence holds the known answer. A
linear model is fitted listwise (softmax over a question's candidates) and checked on articles
left out of training (5 folds by article).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from qa.answer.candidates import DEPTH, FEATURES, Candidate, find_candidates, sentence_signals
from qa.answer.choose import CHOICE_FEATURES, CHOICE_MODEL, choice_features
from qa.answer.pipeline import AnswerModels
from qa.answer.ranking import SENTENCE_MODEL, SentenceModel
from qa.answer.reading import read
from qa.answer.retrieve import Retrieval
from qa.config import Settings, index_location
from qa.engine import load_answer_models, open_retriever, reader_folder
from qa.ingest.text import squash_spaces
from qa.tools.evaluate import read_cases
from qa.train.folds import article_folds

Describe = Callable[[Retrieval], tuple[list[Candidate], np.ndarray]]


@dataclass(frozen=True)
class Example:
    """One training question: its article, and its candidates' features and labels."""

    article: str
    features: np.ndarray
    labels: np.ndarray  # 1.0 where the candidate sentence contains the known answer


def fit(questions: list[tuple[np.ndarray, np.ndarray]], l2: float = 0.001, steps: int = 3000) -> SentenceModel:
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


def save_model(model: SentenceModel, path: Path, features: tuple[str, ...]) -> None:
    data = {"features": list(features), "mean": model.mean.tolist(), "scale": model.scale.tolist(), "weights": model.weights.tolist()}
    path.write_text(json.dumps(data, indent=1) + "\n", "utf-8")


def with_reader(models: AnswerModels) -> Describe:
    """The candidates and what the choice model weighs: their signals and the reader's."""

    def describe(retrieval: Retrieval) -> tuple[list[Candidate], np.ndarray]:
        candidates = find_candidates(retrieval, models.sentence)
        return candidates.found, choice_features(candidates, read(models.reader, retrieval, candidates, models.read_windows))

    return describe


def example(retriever, question: str, answer: str, article: str, describe: Describe = sentence_signals) -> Example | None:
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


def cross_validate(examples: list[Example], folds: int = 5, seed: int = 0) -> np.ndarray:
    """For each example, whether a model trained without its article chooses a right sentence
    (NaN for all when there is a single article: nothing to leave out)."""
    right = np.full(len(examples), np.nan)
    groups = article_folds({e.article for e in examples}, folds, seed)
    for held_out in groups if len(groups) > 1 else ():
        model = fit([(e.features, e.labels) for e in examples if e.article not in held_out])
        for i, e in enumerate(examples):
            if e.article in held_out:
                right[i] = e.labels[int(np.argmax(model.scores(e.features)))]
    return right


def train_selector(settings: Settings, question_sets: list[tuple[Path, str]], reader: bool, output: Path | None,
                   say: Callable[[str], None] = print) -> None:
    """Train the sentence model (or, with ``reader``, the choice model) on the questions of each
    (file, index) pair and write it, saying the figures as it goes: held-out accuracy by set."""
    if reader:
        describe, features = with_reader(load_answer_models(settings, trained_choice=False, judged=False)), CHOICE_FEATURES
        output = output or reader_folder(settings) / CHOICE_MODEL
    else:
        describe, features, output = sentence_signals, FEATURES, output or SENTENCE_MODEL
    examples, embedder, sets = [], None, []
    for file, index in question_sets:
        retriever = open_retriever(replace(settings, index=index_location(index)), embedder)
        embedder = retriever.embedder
        cases = [c for c in read_cases(file) if c.answer]
        found = [e for c in cases if (e := example(retriever, c.question, c.answer, c.doc or file.stem, describe)) is not None]
        say(f"{file}: {len(cases)} answerable questions; the answer is in a candidate sentence for {sum(e.labels.any() for e in found)}")
        sets.append((f"{file} on {index}", len(examples), len(examples) + len(found)))
        examples += found
    try:
        say(f"sentence accuracy, current model:             {accuracy(SentenceModel.load(output, features), examples):.3f}")
    except ValueError as error:
        say(f"current model: {error}")
    held_out = cross_validate(examples)
    say(f"sentence accuracy, trained on other articles: {np.mean(held_out):.3f} (5 folds by article)")
    for name, start, end in sets:
        say(f"    {name}: {np.mean(held_out[start:end]):.3f}")
    save_model(fit([(e.features, e.labels) for e in examples]), output, features)
    say(f"sentence accuracy, trained on all:            {accuracy(SentenceModel.load(output, features), examples):.3f}; written to {output}")
