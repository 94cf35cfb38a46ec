"""The choose stage: the answering sentence, and its short answer.

With the reader: its best span in the window of the sentence model's best candidate, and the
sentence holding it. Measured (docs/measurements.md): picking instead the window the reader
finds most answerable among 3 loses 0.11–0.25 of the right sentences; the answerability is a
verdict on one window, not a ranking across windows. Without a reader (QA_READER=none), the
sentence model's best candidate, with no short answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa.answer.candidates import Candidates
from qa.answer.reading import Span


@dataclass(frozen=True)
class Choice:
    hit: int  # the chosen sentence's passage, in retrieval.hits
    span: tuple[int, int]  # the sentence in the passage's text
    answer: tuple[int, int] | None  # the short answer in the passage's text (None: no reader)
    answerability: float | None  # the reader's answerability logit for it (None: no reader)


def choose(found: Candidates, spans: list[Span] | None) -> Choice:
    """The reader's span in the first window read (the best candidate's), or without a reader the
    sentence model's best candidate."""
    if spans:
        best = spans[0]
        sentence = next(c for c in found.found if (c.hit, c.sentence) == (best.hit, best.sentence))
        return Choice(best.hit, sentence.span, (best.start, best.end), best.answerability)
    best = found.found[int(np.argmax(found.scores))]
    return Choice(best.hit, best.span, None, None)
