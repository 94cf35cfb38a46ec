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


_ENGLISH_WORDS = frozenset(
    "the what who when where which why how is are was were did does do of in to and a an with "
    "from for on at by between has have had much many long share".split()
)
_FRENCH_WORDS = frozenset(
    "le la les des du de un une est sont qui que quel quelle quels quelles quand où comment "
    "combien pourquoi et en au aux dans par pour sur avec a-t-il a-t-elle qu'est-ce ce cette".split()
)


def question_language(question: str) -> str:
    """"fr" or "en": which of the two the question's function words point to (French if unsure)."""
    words = question.lower().replace("’", "'").replace("?", " ").split()
    english = sum(w in _ENGLISH_WORDS for w in words)
    french = sum(w in _FRENCH_WORDS for w in words)
    return "en" if english > french else "fr"
