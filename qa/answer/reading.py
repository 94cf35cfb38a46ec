"""The read stage: the reader reads the question with the windows around the candidates the
sentence model ranks best, and each candidate gets the reader's signals (READER_FEATURES).

The short answer is the reader's best span inside the chosen sentence, without the white space,
punctuation and footnote markers at its edges. A sentence chosen without having been read (its
window was not among those read) has its window read then, for its short answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from qa.answer.candidates import Candidate, Candidates
from qa.answer.reader import Reader, Reading
from qa.answer.retrieve import Retrieval
from qa.answer.windows import Window, reading_windows, window_around

READER_FEATURES = (
    "reader_margin",  # best span inside the sentence minus its window's "not here" score (0 if not read)
    "reader_margin_gap",  # … minus the best margin among the sentences read
    "reader_read",  # 1 when the reader read the sentence
)
_TRAILING_MARKER = re.compile(r"\[\d*\]?$|\[$")  # a footnote marker, whole or cut, ending a span


@dataclass(frozen=True)
class Readings:
    """What the reader read for one question, and each candidate's READER_FEATURES."""

    retrieval: Retrieval
    read: list[tuple[Window, Reading]]
    features: np.ndarray  # READER_FEATURES, one row per candidate
    reader: Reader  # to read the window of a sentence chosen without having been read

    def short_answer(self, candidate: Candidate) -> tuple[int, int]:
        """The reader's best span inside the candidate sentence, in its passage's text."""
        passage = self.retrieval.hits[candidate.hit].passage
        readings = [(w, r) for w, r in self.read if w.holds(candidate.hit, candidate.sentence)]
        if not readings:  # chosen without being read: read it now, for its short answer
            window = window_around(passage, candidate.sentence, candidate.hit)
            readings = [(window, self.reader.read(self.retrieval.question, [window.text_in(passage)])[0])]
        _, start, end = max(span_in(candidate, window, reading) for window, reading in readings)
        return stripped(passage.text, start, end)


def read(reader: Reader, retrieval: Retrieval, found: Candidates, windows: int) -> Readings:
    """The read stage: ``windows`` windows around the best-ranked candidates, read in one batch."""
    chosen = windows_to_read(retrieval, found, windows)
    texts = [w.text_in(retrieval.hits[w.hit].passage) for w in chosen]
    readings = list(zip(chosen, reader.read(retrieval.question, texts)))
    return Readings(retrieval, readings, reader_signals(found.found, readings), reader)


def windows_to_read(retrieval: Retrieval, found: Candidates, count: int) -> list[Window]:
    """The windows around the candidates the sentence model ranks best, the best of each passage
    first: an answer that retrieval ranked below the first passages is read too."""
    order = np.argsort(-found.scores, kind="stable")
    ranked = [(found.found[i].hit, found.found[i].sentence) for i in order]
    best_of_each: dict[int, tuple[int, int]] = {}
    for hit, sentence in ranked:
        best_of_each.setdefault(hit, (hit, sentence))
    firsts = list(best_of_each.values())
    passages = [hit.passage for hit in retrieval.hits]
    return reading_windows(passages, firsts + [c for c in ranked if c not in firsts], count)


def span_in(candidate: Candidate, window: Window, reading: Reading) -> tuple[float, int, int]:
    """The reader's best span inside the candidate sentence (passage offsets), as its margin over
    the window's "not here" score; -inf when no token of the sentence was read."""
    found = reading.best_span(candidate.span[0] - window.start, candidate.span[1] - window.start)
    if found is None:
        return -np.inf, candidate.span[0], candidate.span[0]
    score, start, end = found
    return score - reading.no_answer, window.start + start, window.start + end


def reader_signals(found: list[Candidate], readings: list[tuple[Window, Reading]]) -> np.ndarray:
    """READER_FEATURES for each candidate."""
    margins = np.full(len(found), -np.inf)
    for row, candidate in enumerate(found):
        for window, reading in readings:
            if window.holds(candidate.hit, candidate.sentence):
                margins[row] = max(margins[row], span_in(candidate, window, reading)[0])
    read = np.isfinite(margins)
    best = margins[read].max() if read.any() else 0.0
    return np.column_stack([np.where(read, margins, 0.0), np.where(read, margins - best, 0.0), read.astype(float)])


def stripped(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without the white space, punctuation and footnote markers ``[n]`` a token may
    carry at its edges."""
    while start < end and (text[start].isspace() or text[start] in ",;:("):
        start += 1
    while end > start:
        marker = _TRAILING_MARKER.search(text, start, end)
        if marker:
            end = marker.start()
        elif text[end - 1].isspace() or text[end - 1] in ",;:.)":
            end -= 1
        else:
            break
    return start, end
