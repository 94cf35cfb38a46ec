"""The judge stage: whether the corpus answers, and how surely the answer shown is right.

With the reader, one number decides: the confidence, the probability that the answer shown is
right, read from the reader's answerability of the window it came from through a calibration
fitted on questions of articles left out (``qa/models/reader/calibration.json``, written by
``python -m qa calibrate``). Below the calibration's threshold citeqa says the corpus does not
seem to state it. Besides it, the vetoes that a held-out figure shows to help
(``Calibration.vetoes``): a sentence lacking the year, date or number the question asks for
(``answer_type``), a question in the corpus's language naming what the corpus never mentions
(``unknown_names``); and a question asking for a source is answered only when the sentence has
references.

Without the reader (QA_READER=none) a rule decides: the chosen passage's fused score below
ANSWER_THRESHOLD, or a veto, abstains; there is no confidence.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from qa.answer.choose import Choice
from qa.answer.question import Question
from qa.answer.question_types import answer_type_fit
from qa.answer.retrieve import Retrieval
from qa.answer.sources import source_answer
from qa.store.contract import PassageStore, reference_text
from qa.store.lexical import terms

CALIBRATION = "calibration.json"  # in the reader's folder: fitted on its scores
VETOES = ("answer_type", "unknown_names")
# Without a reader (QA_READER=none), calibrated on dev.jsonl: below this fused score the corpus is taken not to answer.
ANSWER_THRESHOLD = 0.80
# Share of a question's terms known to the corpus above which it is taken to be in its language.
SAME_LANGUAGE_COVERAGE = 0.5
# A capitalised word that does not start the question, or an acronym: a name.
_NAME = re.compile(r"(?<!^)\b[A-ZÀ-Ý][\w'’-]*")


@dataclass(frozen=True)
class Calibration:
    """The reader's answerability logit → the probability that the answer shown is right (Platt
    scaling), the confidence below which citeqa abstains, and the vetoes applied."""

    slope: float
    intercept: float
    threshold: float
    vetoes: tuple[str, ...]

    def confidence(self, answerability: float) -> float:
        return 1 / (1 + math.exp(-(self.slope * answerability + self.intercept)))

    @classmethod
    def load(cls, path: Path) -> "Calibration":
        try:
            data = json.loads(path.read_text("utf-8"))
            calibration = cls(float(data["slope"]), float(data["intercept"]), float(data["threshold"]), tuple(data["vetoes"]))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ValueError(f"no usable calibration at {path} ({error}): fit it with `python -m qa calibrate`") from error
        if set(calibration.vetoes) - set(VETOES):
            raise ValueError(f"{path} names unknown vetoes {sorted(set(calibration.vetoes) - set(VETOES))}; refit it with `python -m qa calibrate`")
        return calibration

    def as_json(self) -> dict:
        return {"slope": self.slope, "intercept": self.intercept, "threshold": self.threshold, "vetoes": list(self.vetoes)}


@dataclass(frozen=True)
class Verdict:
    answered: bool
    confidence: float | None  # the probability that the answer shown is right (None: no reader)
    vetoed_by: tuple[str, ...]  # the vetoes that hold for the chosen sentence (whether applied or not)
    source_answer: str | None  # for a question asking for a source: the text of the references backing the sentence


def judge(question: Question, choice: Choice, retrieval: Retrieval, calibration: Calibration | None, store: PassageStore) -> Verdict:
    """The judge stage: answer or abstain, and how surely."""
    passage = retrieval.hits[choice.hit].passage
    vetoes = vetoes_holding(question.text, passage.text[choice.span[0] : choice.span[1]], retrieval, store)
    if calibration is None or choice.answerability is None:
        confidence = None
        answered = not vetoes and retrieval.hits[choice.hit].score >= ANSWER_THRESHOLD
    else:
        confidence = calibration.confidence(choice.answerability)
        answered = confidence >= calibration.threshold and not set(vetoes) & set(calibration.vetoes)
    sources = None
    if question.source:
        references = (reference_text(store, passage.doc_id, n) for n in passage.footnotes_backing(choice.span))
        sources = source_answer([r for r in references if r]) or None
        answered = answered and sources is not None
    return Verdict(answered, confidence, vetoes, sources)


def vetoes_holding(question: str, sentence: str, retrieval: Retrieval, store: PassageStore) -> tuple[str, ...]:
    """The VETOES that hold for an answering sentence."""
    holding = {"answer_type": answer_type_fit(question, sentence) < 0, "unknown_names": bool(unknown_names(question, retrieval, store))}
    return tuple(name for name in VETOES if holding[name])


def unknown_names(question: str, retrieval: Retrieval, store: PassageStore) -> tuple[str, ...]:
    """Names in a question in the corpus's language (most of its terms known) that the corpus
    never mentions: "le PIB", "la Mongolie". The corpus cannot answer about what it never names.
    Questions in another language are left out: their names are spelt otherwise (Putin, Poutine)."""
    if retrieval.term_coverage < SAME_LANGUAGE_COVERAGE:
        return ()
    names = _NAME.findall(question.strip())
    return tuple(name for name in names if (found := terms(name)) and not any(store.document_frequencies(found).values()))
