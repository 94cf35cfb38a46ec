"""Small text helpers shared by the stages: footnote markers, sentences, folding for matching."""

from __future__ import annotations

import re
import unicodedata

FOOTNOTE_MARKER = re.compile(r"\[(\d+)\]")

# A sentence ends at . ! ? or … (optionally followed by closing quotes and footnote markers),
# and the next one starts with a capital letter or an opening quote. "M. Poutine" is not a break.
SENTENCE_BREAK = r'(?<![\s(][A-Z]\.)(?<=[.!?…])(?:\[\d+\])*\s+(?=[«"“(]?\s?[A-ZÀ-ÖØ-Þ])'
_SENTENCE_BREAK = re.compile(SENTENCE_BREAK)


def footnotes_in(text: str) -> tuple[int, ...]:
    """The footnote numbers cited in ``text``, in order of first appearance."""
    return tuple(dict.fromkeys(int(n) for n in FOOTNOTE_MARKER.findall(text)))


def without_footnotes(text: str) -> str:
    """The text with its ``[n]`` markers removed, for embedding and lexical matching."""
    return FOOTNOTE_MARKER.sub("", text)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the sentences of ``text``; a sentence keeps its footnote markers."""
    spans = []
    start = 0
    for match in _SENTENCE_BREAK.finditer(text):
        spans.append((start, match.start() + len(match.group().rstrip())))
        start = match.end()
    if start < len(text.rstrip()):
        spans.append((start, len(text.rstrip())))
    return [(a, b) for a, b in spans if text[a:b].strip()]


def fold(text: str) -> str:
    """Lower case, accents removed, typographic apostrophes and spaces made plain."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.replace("’", "'").replace("\u00a0", " ")


def squash_spaces(text: str) -> str:
    """All runs of white space (any kind) made one plain space; for comparing texts."""
    return " ".join(text.split())
