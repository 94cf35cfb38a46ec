"""The read stage: the reader reads the question with the windows around the candidates the
sentence model ranks best (``QA_READ_WINDOWS``, 1 by default: the window of the best candidate);
each window gets the reader's answerability and its best span, cut at the end of the sentence
where it starts, without the white space, punctuation and footnote markers at its edges.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from qa.answer.candidates import Candidates
from qa.answer.reader import Reader, Reading
from qa.answer.retrieve import Retrieval
from qa.answer.windows import Window, reading_windows

_TRAILING_MARKER = re.compile(r"\[\d*\]?$|\[$")  # a footnote marker, whole or cut, ending a span


@dataclass(frozen=True)
class Span:
    """The reader's answer in one window read: where it is in its passage, and its scores."""

    hit: int  # the passage, in retrieval.hits
    sentence: int  # the passage's sentence where the span starts
    start: int  # the span in the passage's text
    end: int
    answerability: float  # the window's answerability logit
    span_score: float  # start + end score of the span


def read(reader: Reader, retrieval: Retrieval, found: Candidates, windows: int) -> list[Span]:
    """The read stage: ``windows`` windows around the best-ranked candidates, read in one batch;
    each window's best span, in the order of the windows (the best candidate's first)."""
    chosen = windows_to_read(retrieval, found, windows)
    texts = [w.text_in(retrieval.hits[w.hit].passage) for w in chosen]
    spans = [best_span(retrieval, window, reading) for window, reading in zip(chosen, reader.read(retrieval.question, texts))]
    return [span for span in spans if span is not None]


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


def best_span(retrieval: Retrieval, window: Window, reading: Reading) -> Span | None:
    """The window's best span, cut at the end of the sentence where it starts (None: the reader
    saw none of the window's text)."""
    found = reading.best_span()
    if found is None:
        return None
    score, start, end = found
    passage = retrieval.hits[window.hit].passage
    start += window.start
    sentence = next((i for i in window.sentences if start < passage.sentences[i][1]), window.sentences[-1])
    start, end = stripped(passage.text, start, min(window.start + end, passage.sentences[sentence][1]))
    return Span(window.hit, sentence, start, end, reading.answerable, score)


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
