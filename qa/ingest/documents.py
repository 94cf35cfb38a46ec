"""Parsing: an article's text (a Wikipedia article saved as plain text, Markdown, or what a reader
of another format wrote, qa/ingest/readers.py) → a Document with sections and references.

The format (see corpus/; Markdown files use "# Title" and "## Section" instead): the title on the first line, Wikipedia's tagline, an infobox of short
lines, the lead paragraphs, then sections whose headings end in ``[modifier | modifier le code]``.
Paragraphs are separated by blank lines and cite footnotes as ``[n]``. The section
"Notes et références" lists the references as ``  n. a b et c Text``, where the letters are
back-links that are not part of the reference.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from qa.ingest.text import footnotes_in

LEAD_SECTION = "Introduction"
HEADING_SUFFIX = "[modifier | modifier le code]"
REFERENCE_SECTIONS = ("notes et références", "références", "notes")
TAGLINE = re.compile(r"^(Un article de Wikipédia|From Wikipedia)", re.IGNORECASE)
BLOCK = re.compile(r"[^\n]+(?:\n[^\n]+)*")  # lines up to a blank line: a paragraph, a heading
_REFERENCE_ENTRY = re.compile(r"^[ \t]*(\d+)\.[ \t]+(.+)$", re.MULTILINE)
_MARKDOWN_HEADING = re.compile(r"^#{2,6} \S")
_BACKLINKS = re.compile(r"^(?:[a-z] )*[a-z] et [a-z] ")


class CorpusFileError(ValueError):
    """A corpus file cannot be read as an article; the message names the file."""


@dataclass(frozen=True)
class Paragraph:
    """A block of the article: its text, where it sits in the source, and what kind it is."""

    text: str
    start: int
    end: int
    kind: str = "text"  # "text", "infobox", "reference", or "source" (full text of a cited source)
    footnotes: tuple[int, ...] = ()
    file: str = ""  # the corpus file it was read from, by its path in the corpus folder (offsets: in its text as read)
    page: int | None = None  # the page it starts on, in a paged file (PDF)
    page_starts: tuple[tuple[int, int], ...] = ()  # (offset, page) of each later page it goes on to


@dataclass(frozen=True)
class Section:
    title: str
    paragraphs: tuple[Paragraph, ...]


@dataclass(frozen=True)
class Reference:
    """One entry of "Notes et références", back-link letters stripped."""

    number: int
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    path: str
    sha256: str
    sections: tuple[Section, ...]
    references: dict[int, Reference] = field(default_factory=dict)

    def read_from(self, file: str) -> "Document":
        """The document with the name of the file it was read from on each paragraph."""
        return replace(self, sections=tuple(replace(s, paragraphs=tuple(replace(p, file=file) for p in s.paragraphs)) for s in self.sections))

    def with_sources(self, sources: list[Section]) -> "Document":
        """The document with the full texts of its cited sources as sections of their own."""
        return replace(self, sections=self.sections + tuple(sources))


def decoded_text(raw: bytes, path: Path) -> str:
    """The text of a plain-text file's bytes, or CorpusFileError saying why they are not text."""
    if b"\x00" in raw:
        raise CorpusFileError(f"{path}: binary file, not text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise CorpusFileError(f"{path}: not UTF-8 text (byte {error.start})") from error
    if not text.strip():
        raise CorpusFileError(f"{path}: empty file")
    return text


def parse_article(source: str, doc_id: str, path: str = "", sha256: str = "") -> Document:
    """Split the source into title, sections of paragraphs and the reference list.

    The reference list becomes a section of its own whose paragraphs are the references,
    so that a question about a source finds it. Empty sections are dropped.
    """
    blocks = [(m.group(), m.start(), m.end()) for m in BLOCK.finditer(source) if m.group().strip()]
    first_line, _, rest = blocks[0][0].partition("\n")
    title = first_line.strip().lstrip("#").strip()
    if rest.strip():  # no blank line after the title: the lines under it are the first block
        start = blocks[0][1] + len(first_line) + 1
        blocks[0:1] = [("", 0, 0), (rest, start, blocks[0][2])]
    sections: list[Section] = []
    references: dict[int, Reference] = {}
    heading, paragraphs = LEAD_SECTION, []
    for text, start, end in blocks[1:]:
        if TAGLINE.match(text.strip()):
            continue
        if _is_heading(text):
            sections.append(Section(heading, tuple(paragraphs)))
            heading, paragraphs = _heading_title(text), []
        elif heading.lower() in REFERENCE_SECTIONS:
            found = _references_in(text, start)
            references.update(found)
            paragraphs += [Paragraph(r.text, r.start, r.end, "reference", (r.number,)) for r in found.values()]
        else:
            paragraphs.append(_paragraph(text, start, end, first=not sections and not paragraphs))
    sections.append(Section(heading, tuple(paragraphs)))
    non_empty = tuple(s for s in sections if s.paragraphs)
    if not non_empty:
        raise CorpusFileError(f"{path or doc_id}: no text after the title {title!r}")
    return Document(doc_id, title, path, sha256, non_empty, references)


def with_pages(document: Document, page_starts: tuple[tuple[int, int], ...]) -> Document:
    """The document with each paragraph's page (see ``on_pages``)."""
    if not page_starts:
        return document
    return replace(document, sections=tuple(replace(s, paragraphs=on_pages(s.paragraphs, page_starts)) for s in document.sections))


def on_pages(paragraphs: tuple[Paragraph, ...], page_starts: tuple[tuple[int, int], ...]) -> tuple[Paragraph, ...]:
    """Each paragraph with its page (the last page that begins at or before its start) and the
    pages that begin inside it."""
    if not page_starts:
        return paragraphs
    offsets = [offset for offset, _ in page_starts]
    return tuple(replace(p, page=page_starts[max(0, bisect.bisect_right(offsets, p.start) - 1)][1],
                         page_starts=tuple((at, page) for at, page in page_starts if p.start < at < p.end))
                 for p in paragraphs)


def _is_heading(block: str) -> bool:
    """A Wikipedia heading (ends in "[modifier | modifier le code]") or a Markdown one ("## …")."""
    return "\n" not in block and (block.rstrip().endswith(HEADING_SUFFIX) or _MARKDOWN_HEADING.match(block) is not None)


def _heading_title(block: str) -> str:
    block = block.strip()
    if block.endswith(HEADING_SUFFIX):
        block = block[: -len(HEADING_SUFFIX)]
    return block.lstrip("#").strip()


def _paragraph(text: str, start: int, end: int, first: bool) -> Paragraph:
    """A text paragraph, or the infobox: the first block when it is several short lines."""
    lines = text.split("\n")
    is_infobox = first and len(lines) > 2 and all(len(line) < 80 and not line.rstrip().endswith(".") for line in lines)
    return Paragraph(text, start, end, kind="infobox" if is_infobox else "text", footnotes=footnotes_in(text))


def _references_in(block: str, offset: int) -> dict[int, Reference]:
    references = {}
    for match in _REFERENCE_ENTRY.finditer(block):
        number, entry = int(match.group(1)), match.group(2).rstrip()
        backlinks = _BACKLINKS.match(entry)
        skip = backlinks.end() if backlinks else 0
        start = offset + match.start(2) + skip
        references[number] = Reference(number, entry[skip:], start, start + len(entry) - skip)
    return references
