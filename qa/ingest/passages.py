"""Splitting: a Document → Passages that keep their section, source offsets and footnotes.

Each paragraph is split on its own (a passage never spans two paragraphs, so it is one
contiguous span of the source) with langchain's RecursiveCharacterTextSplitter, whose only
separator is a sentence boundary: a sentence is never cut, and a footnote marker stays with the
sentence it follows. A sentence longer than the chunk size becomes a passage of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from qa.ingest.documents import Document, Paragraph
from qa.ingest.text import SENTENCE_BREAK, footnotes_in, sentence_spans


PROSE = ("text", "source")  # kinds split into sentences; an infobox or a reference stays whole
CITING = ("text", "infobox")  # kinds whose [n] markers are the article's footnotes


@dataclass(frozen=True)
class Passage:
    """The unit that is embedded, retrieved and shown."""

    id: str
    doc_id: str
    title: str
    section: str
    kind: str  # "text", "infobox", "reference" or "source"
    text: str
    start: int
    end: int
    footnotes: tuple[int, ...]  # every footnote backing some of its text (see sentence_footnotes)
    sentences: tuple[tuple[int, int], ...]  # spans inside ``text``
    file: str = ""  # the corpus file it was read from (its offsets are in that file's text, as read)
    # For each sentence, the footnotes that back it: its own markers or, as on Wikipedia where a
    # marker at the end of a run of sentences covers them all, those of the next sentence of its
    # paragraph that has some (possibly in the next passage).
    sentence_footnotes: tuple[tuple[int, ...], ...] = ()
    page: int | None = None  # its page, in a paged file (PDF): its sentences all start on it

    @property
    def page_label(self) -> str:
        """Its page as a citation shows it (« p. 3 »), or nothing outside a paged file."""
        return "" if self.page is None else f"p. {self.page}"

    @property
    def place(self) -> str:
        """Where it is, as a citation says it: document › section (, p. 3 in a PDF)."""
        return f"{self.title} › {self.section}" + (f", {self.page_label}" if self.page_label else "")

    def footnotes_backing(self, span: tuple[int, int]) -> tuple[int, ...]:
        """The footnotes that back one of its sentences (given by its span)."""
        return self.sentence_footnotes[self.sentences.index(span)]


def sentence_splitter(chunk_size: int, chunk_overlap: int) -> RecursiveCharacterTextSplitter:
    """A splitter that only ever cuts between sentences."""
    return RecursiveCharacterTextSplitter(
        separators=[SENTENCE_BREAK],
        is_separator_regex=True,
        keep_separator="end",
        chunk_size=chunk_size,
        chunk_overlap=chunk_overlap,
        strip_whitespace=True,
    )


def passages_for(document: Document, chunk_size: int, chunk_overlap: int = 0) -> list[Passage]:
    """All passages of a document, in reading order; references are passages of their own."""
    splitter = sentence_splitter(chunk_size, chunk_overlap)
    passages = []
    for section_number, section in enumerate(document.sections):
        for number, paragraph in enumerate(section.paragraphs):
            cuts = _page_cuts(paragraph)
            spans = []  # each piece (a page's part of the paragraph) split on its own
            for (a, _), (b, _) in zip(cuts, cuts[1:] + [(paragraph.end, None)]):
                piece = paragraph.text[a - paragraph.start : b - paragraph.start]
                spans += _locate(splitter.split_text(piece) if paragraph.kind in PROSE else [piece], piece, a)
            texts = [paragraph.text[start - paragraph.start : end - paragraph.start] for start, end in spans]
            sentences = [tuple(sentence_spans(t)) if paragraph.kind in PROSE else ((0, len(t)),) for t in texts]
            backing = _backing_footnotes(texts, sentences, paragraph)
            for chunk_number, ((start, end), text) in enumerate(zip(spans, texts)):
                passages.append(
                    Passage(
                        id=_passage_id(document.doc_id, paragraph, f"s{section_number}p{number}c{chunk_number}"),
                        doc_id=document.doc_id,
                        title=document.title,
                        section=section.title,
                        kind=paragraph.kind,
                        text=text,
                        start=start,
                        end=end,
                        footnotes=tuple(dict.fromkeys(n for notes in backing[chunk_number] for n in notes)),
                        sentences=sentences[chunk_number],
                        file=paragraph.file,
                        sentence_footnotes=backing[chunk_number],
                        page=next(page for at, page in reversed(cuts) if at <= start),
                    )
                )
    return passages


def _page_cuts(paragraph: Paragraph) -> list[tuple[int, int | None]]:
    """Where a paragraph is cut so that no passage goes on to another page, with the page of each
    piece: at the first sentence that starts on each new page (a sentence stays whole, on the
    page it starts on)."""
    cuts: list[tuple[int, int | None]] = [(paragraph.start, paragraph.page)]
    if paragraph.kind not in PROSE or not paragraph.page_starts:
        return cuts
    starts = [paragraph.start + a for a, _ in sentence_spans(paragraph.text)]
    for at, page in paragraph.page_starts:
        cut = next((s for s in starts if s >= at), None)
        if cut is not None and cut > cuts[-1][0]:
            cuts.append((cut, page))
        elif cut is not None and cut == cuts[-1][0]:
            cuts[-1] = (cut, page)
    return cuts


def _backing_footnotes(texts: list[str], sentences: list[tuple], paragraph: Paragraph) -> list[tuple[tuple[int, ...], ...]]:
    """For each chunk of a paragraph, the footnotes backing each of its sentences: in the
    article's text, its own markers or the next ones of the paragraph; in a reference or a
    source, the reference itself."""
    if paragraph.kind not in CITING:
        return [tuple(paragraph.footnotes for _ in spans) for spans in sentences]
    following: tuple[int, ...] = ()
    backing = []
    for text, spans in reversed(list(zip(texts, sentences))):
        notes = []
        for start, end in reversed(spans):
            following = footnotes_in(text[start:end]) or following
            notes.append(following)
        backing.append(tuple(reversed(notes)))
    return list(reversed(backing))


def _locate(chunks: list[str], text: str, offset: int) -> list[tuple[int, int]]:
    """Source offsets of each chunk, searched in order inside ``text`` (which starts at ``offset``)."""
    spans, cursor = [], 0
    for chunk in (c.strip() for c in chunks):
        at = text.index(chunk, cursor)
        spans.append((offset + at, offset + at + len(chunk)))
        cursor = at + 1  # chunks may overlap
    return spans


def _passage_id(doc_id: str, paragraph: Paragraph, position: str) -> str:
    """Stable ids: a reference is named by its number, a chunk by its place (in its source's text)."""
    if paragraph.kind == "reference":
        return f"{doc_id}:ref-{paragraph.footnotes[0]}"
    if paragraph.kind == "source":
        return f"{doc_id}:src-{paragraph.footnotes[0]}:{position[position.index('p'):]}"
    return f"{doc_id}:{position}"
