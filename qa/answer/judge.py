"""The judge stage: whether the corpus answers, and how surely the sentence shown is right.

Every reason to abstain is decided here, from the answer's signals:

- vetoes, nearly always right: a sentence that lacks the year, date or number the question asks
  for (its ``answer_type`` signal), a question in the corpus's language naming what the corpus
  never mentions (``unknown_names``), and a question asking for a source whose sentence has no
  reference;
- with the reader, two logistic models (``qa/models/reader/confidence_model.json``) over a few
  signals (the reader's margin for the chosen sentence and its gap to the best one read, the
  choice model's certainty, the sentence's cosine, its passage's score, the share of the
  question's weight it holds, the type of answer asked for, the question's term coverage, unknown
  names): ``answerable``, the probability that the corpus holds an answer (below ``threshold``
  citeqa abstains), and ``correct``, the probability that the sentence shown holds it: the
  confidence shown;
- without the reader, a rule: the chosen passage's fused score below ANSWER_THRESHOLD.

A logistic model is Platt scaling of a linear score: its output is a probability, checked for
calibration on questions left out of training (``python -m qa train-confidence``,
``qa.train.confidence``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.answer.choose import Choice
from qa.answer.question import Question
from qa.answer.ranking import LogisticModel, read_weights
from qa.answer.retrieve import Retrieval
from qa.answer.sources import source_answer
from qa.store.contract import PassageStore, reference_text
from qa.store.lexical import terms

CONFIDENCE_MODEL = "confidence_model.json"  # in the reader's folder: trained on its scores
SIGNALS = (
    "reader_margin", "reader_margin_gap", "reader_read", "certainty", "sentence_cosine", "passage_score",
    "weighted_share", "answer_type", "term_coverage", "unknown_names",
)
# Without a reader (QA_READER=none), calibrated on dev.jsonl: below this fused score the corpus is taken not to answer.
ANSWER_THRESHOLD = 0.80
# Share of a question's terms known to the corpus above which it is taken to be in its language.
SAME_LANGUAGE_COVERAGE = 0.5
# A capitalised word that does not start the question, or an acronym: a name.
_NAME = re.compile(r"(?<!^)\b[A-ZÀ-Ý][\w'’-]*")


@dataclass(frozen=True)
class ConfidenceModel:
    answerable: LogisticModel
    correct: LogisticModel
    threshold: float  # below this probability that the corpus answers, citeqa abstains

    def assess(self, signals: np.ndarray) -> tuple[bool, float]:
        """Whether the corpus answers, by the model alone, and the probability that the sentence is right."""
        row = signals[None, :]
        return bool(self.answerable.probability(row)[0] >= self.threshold), float(self.correct.probability(row)[0])

    @classmethod
    def load(cls, path: Path) -> "ConfidenceModel":
        data = read_weights(path, "signals", SIGNALS, "train-confidence")
        return cls(LogisticModel.from_json(data["answerable"]), LogisticModel.from_json(data["correct"]), float(data["threshold"]))


@dataclass(frozen=True)
class Verdict:
    answered: bool
    confidence: float | None  # the probability that the sentence shown is right (None: no reader)
    signals: np.ndarray  # SIGNALS, what the confidence models read
    source_answer: str | None  # for a question asking for a source: the text of the references backing the sentence


def answer_signals(choice: Choice, retrieval: Retrieval, unknown: tuple[str, ...]) -> np.ndarray:
    """The signals the judge reads (SIGNALS), in order."""
    values = {**choice.signals, "certainty": choice.certainty, "term_coverage": retrieval.term_coverage,
              "unknown_names": float(bool(unknown))}
    return np.array([values.get(name, 0.0) for name in SIGNALS])


def vetoed(signals: np.ndarray) -> bool:
    """A sentence without the year, date or number asked for, or a question naming what the corpus never mentions."""
    return bool(signals[SIGNALS.index("answer_type")] < 0 or signals[SIGNALS.index("unknown_names")] > 0)


def decide(signals: np.ndarray, model: ConfidenceModel | None) -> tuple[bool, float | None]:
    """Whether to answer, and the confidence, from the signals: the vetoes, then the model (or,
    without one, the passage score rule)."""
    if model is None:
        return bool(not vetoed(signals) and signals[SIGNALS.index("passage_score")] >= ANSWER_THRESHOLD), None
    answers, confidence = model.assess(signals)
    return answers and not vetoed(signals), confidence


def judge(question: Question, choice: Choice, retrieval: Retrieval, model: ConfidenceModel | None, store: PassageStore) -> Verdict:
    """The judge stage: answer or abstain, and how surely."""
    signals = answer_signals(choice, retrieval, unknown_names(question.text, retrieval, store))
    answered, confidence = decide(signals, model)
    sources = None
    if question.source:
        passage = retrieval.hits[choice.hit].passage
        references = (reference_text(store, passage.doc_id, n) for n in passage.footnotes_backing(choice.span))
        sources = source_answer([r for r in references if r]) or None
        answered = answered and sources is not None
    return Verdict(answered, confidence, signals, sources)


def unknown_names(question: str, retrieval: Retrieval, store: PassageStore) -> tuple[str, ...]:
    """Names in a question in the corpus's language (most of its terms known) that the corpus
    never mentions: "le PIB", "la Mongolie". The corpus cannot answer about what it never names.
    Questions in another language are left out: their names are spelt otherwise (Putin, Poutine)."""
    if retrieval.term_coverage < SAME_LANGUAGE_COVERAGE:
        return ()
    names = _NAME.findall(question.strip())
    return tuple(name for name in names if (found := terms(name)) and not any(store.document_frequencies(found).values()))
