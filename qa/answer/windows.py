"""The windows the reader reads: whole sentences of one passage around a candidate sentence."""

from __future__ import annotations

from dataclasses import dataclass

from qa.ingest.passages import Passage

# A window read by the reader: whole sentences of one passage, at most this many characters
# (longer only when one sentence is), around a candidate sentence.
WINDOW_CHARS = 400


@dataclass(frozen=True)
class Window:
    """Whole sentences of one passage, read together."""

    hit: int  # the passage's place in the retrieval's hits
    start: int  # character offsets in the passage's text
    end: int
    sentences: tuple[int, ...]  # indices of the passage's sentences it holds

    def holds(self, hit: int, sentence: int) -> bool:
        """Whether this window holds that sentence of that passage."""
        return self.hit == hit and sentence in self.sentences

    def text_in(self, passage: Passage) -> str:
        """Its text, in its passage."""
        return passage.text[self.start : self.end]


def window_around(passage: Passage, sentence: int, hit: int = 0, limit: int = WINDOW_CHARS) -> Window:
    """The sentence with its neighbours in the passage, the one before first, while the whole
    stays within ``limit`` characters."""
    spans = passage.sentences
    first = last = sentence
    grown = True
    while grown:
        grown = False
        for neighbour in (first - 1, last + 1):
            if 0 <= neighbour < len(spans):
                low, high = min(first, neighbour), max(last, neighbour)
                if spans[high][1] - spans[low][0] <= limit:
                    first, last, grown = low, high, True
    return Window(hit, spans[first][0], spans[last][1], tuple(range(first, last + 1)))


def reading_windows(passages: list[Passage], ranked: list[tuple[int, int]], count: int) -> list[Window]:
    """Windows around the best candidates, given as (hit, sentence index) best first: one
    around each candidate not already in a window, ``count`` at most."""
    windows: list[Window] = []
    for hit, sentence in ranked:
        if len(windows) == count:
            break
        if not any(w.holds(hit, sentence) for w in windows):
            windows.append(window_around(passages[hit], sentence, hit))
    return windows
