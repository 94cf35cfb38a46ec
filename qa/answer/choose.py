"""The answering sentence and the short answer inside it: the sentence model ranks the candidate
sentences of the top passages, the reader reads the windows around the best of them, and a second
linear model, over the sentence model's signals and the reader's, makes the choice. The short
answer is the reader's best span inside the chosen sentence.

Without a reader (none shipped, or ``QA_READER=none``) the sentence model alone chooses and there
is no short answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.config import SHIPPED_READER, Settings
from qa.answer.reader import READER_DIR, Reader, Reading, Window, reading_windows, window_around
from qa.answer.retrieve import Retrieval
from qa.answer.candidates import FEATURES, Candidate, SentenceModel, candidates

_TRAILING_MARKER = re.compile(r"\[\d*\]?$|\[$")  # a footnote marker, whole or cut, ending a span
CHOICE_MODEL = "choice_model.json"  # in the reader's folder: trained on its scores

READER_FEATURES = (
    "reader_margin",  # best span inside the sentence minus its window's "not here" score (0 if not read)
    "reader_margin_gap",  # … minus the best margin among the sentences read
    "reader_read",  # 1 when the reader read the sentence
)
CHOICE_FEATURES = FEATURES + READER_FEATURES


@dataclass(frozen=True)
class Choice:
    hit: int  # the chosen sentence's passage, in retrieval.hits
    span: tuple[int, int]  # the sentence in the passage's text
    answer: tuple[int, int] | None  # the short answer in the passage's text (None: no reader)
    signals: dict[str, float]  # the chosen sentence's signals (FEATURES, and READER_FEATURES with a reader)
    certainty: float  # the deciding model's softmax probability for it, among the candidates


@dataclass(frozen=True)
class Signals:
    """Every candidate sentence with its signals, and what the reader read."""

    found: list[Candidate]
    features: np.ndarray  # the sentence model's signals, then READER_FEATURES when a reader read
    readings: list[tuple[Window, Reading]]


@dataclass
class Chooser:
    ranking: SentenceModel  # the sentence model: alone, or to pick what the reader reads
    reader: Reader | None = None
    choice: SentenceModel | None = None  # over the ranking's signals and READER_FEATURES
    windows: int = 3  # windows the reader reads

    def signals(self, retrieval: Retrieval) -> Signals:
        found, features = candidates(retrieval)
        if self.reader is None:
            return Signals(found, features, [])
        windows = self.windows_to_read(retrieval, found, features)
        texts = [retrieval.hits[w.hit].passage.text[w.start : w.end] for w in windows]
        readings = list(zip(windows, self.reader.read(retrieval.question, texts)))
        return Signals(found, np.hstack([features, reader_signals(found, readings)]), readings)

    def described(self, retrieval: Retrieval) -> tuple[list[Candidate], np.ndarray]:
        """The candidates and their signals (``qa.selector.example``'s ``describe``)."""
        signals = self.signals(retrieval)
        return signals.found, signals.features

    def windows_to_read(self, retrieval: Retrieval, found: list[Candidate], features: np.ndarray) -> list[Window]:
        """The windows around the candidates the sentence model ranks best."""
        order = np.argsort(-self.ranking.scores(features), kind="stable")
        passages = [hit.passage for hit in retrieval.hits]
        return reading_windows(passages, [(found[i].hit, found[i].sentence) for i in order], self.windows)

    def choose(self, retrieval: Retrieval) -> Choice:
        """The sentence that best answers among those of the top passages, and its short answer."""
        return self.decide(retrieval, self.signals(retrieval))

    def decide(self, retrieval: Retrieval, signals: Signals) -> Choice:
        """The choice made on the signals (``signals``: the costly part, the reader's reading)."""
        model = self.ranking if self.reader is None else self.choice
        scores = model.scores(signals.features)
        row = int(np.argmax(scores))
        best, certainty = signals.found[row], float(1 / np.exp(scores - scores[row]).sum())
        chosen = dict(zip(CHOICE_FEATURES, map(float, signals.features[row])))
        if self.reader is None:
            return Choice(best.hit, best.span, None, chosen, certainty)
        readings = [(w, r) for w, r in signals.readings if w.holds(best.hit, best.sentence)]
        if not readings:  # chosen without being read: read it now, for its short answer
            window = window_around(retrieval.hits[best.hit].passage, best.sentence, best.hit)
            readings = [(window, self.reader.read(retrieval.question, [retrieval.hits[best.hit].passage.text[window.start : window.end]])[0])]
        _, start, end = max(span_in(best, window, reading) for window, reading in readings)
        return Choice(best.hit, best.span, stripped(retrieval.hits[best.hit].passage.text, start, end), chosen, certainty)


def span_in(candidate: Candidate, window: Window, reading: Reading) -> tuple[float, int, int]:
    """The reader's best span inside the candidate sentence (passage offsets), as its margin over
    the window's "not here" score; -inf when no token of the sentence was read."""
    found = reading.best_span(candidate.span[0] - window.start, candidate.span[1] - window.start)
    if found is None:
        return -np.inf, candidate.span[0], candidate.span[0]
    score, start, end = found
    return score - reading.no_answer, window.start + start, window.start + end


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


def reader_folder(settings: Settings) -> Path:
    """The configured reader's folder (``settings.reader`` is not "none")."""
    return READER_DIR if settings.reader == SHIPPED_READER else Path(settings.reader)


def load_chooser(settings: Settings, trained_choice: bool = True) -> Chooser:
    """The sentence model, and the configured reader with the choice model trained on its scores
    (``trained_choice=False``: without it, to train it)."""
    ranking = SentenceModel.load()
    if settings.reader == "none":
        return Chooser(ranking)
    folder = reader_folder(settings)
    choice = SentenceModel.load(folder / CHOICE_MODEL, CHOICE_FEATURES) if trained_choice else None
    return Chooser(ranking, Reader.load(settings, folder), choice, settings.read_windows)
