"""PDF → article text, page by page (pypdf).

pypdf gives each page's text as printed lines: a running header, the page number, and
paragraphs broken in mid-sentence (or mid-word, with a hyphen). Each line is read with where it
sits on the page and its font, then:
- the lines that repeat at the top or bottom of most pages (headers, footers) or that are only a
  page number are dropped;
- a line in a larger or bold font, short, is a section heading;
- lines are joined into paragraphs: a paragraph ends where the space to the next line is larger
  than between the lines of a paragraph, or (lines without positions, a page break) at a short
  line that ends a sentence; a word hyphenated at a line's end is joined back.
Each paragraph keeps the page it starts on.
"""

from __future__ import annotations

import io
import logging
import re
import statistics
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pypdf import PdfReader
from pypdf._text_extraction import mult

from qa.ingest.converted import Block, ConvertedText, ReadLimits, article_text, one_line
from qa.ingest.documents import CorpusFileError

_PAGE_NUMBER = re.compile(r"^(?:page\s*)?[-–—]?\s*\d{1,4}\s*[-–—]?(?:\s*(?:/|sur|of)\s*\d{1,4})?$", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?…:»\"”)]$")
_NO_HEADING_END = re.compile(r"[.!?…:;,»\"”)\]-]$")
_EDGE_LINES = 2  # lines at the top and at the bottom of a page where headers and footers sit
_SHORT = 0.75  # a line shorter than this share of a full line ends its paragraph (after punctuation)
_PARAGRAPH_GAP = 1.3  # a space to the next line this many times a paragraph's line spacing ends it
_HEADING_SIZE = 1.15  # a font this many times the body's size is a heading's
_NOT_TEXT = ("Co", "Cc")  # icon fonts' private glyphs; control characters (a glyph the font lacks: \x00)
_UNTITLED = re.compile(r"^(untitled|sans titre|microsoft word - .*|document\d*)$", re.IGNORECASE)

logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings on damaged files become our refusal, not noise


@dataclass(frozen=True)
class Line:
    """A printed line: its text, the height of its baseline on the page, its font size and weight."""

    text: str
    y: float | None = None
    size: float = 0.0
    bold: bool = False
    x: float | None = None  # where it starts


def pdf_text(raw: bytes, path: Path, limits: ReadLimits) -> ConvertedText:
    """The article text of a PDF, or CorpusFileError saying why it cannot be read."""
    metadata_title, pages = _read(raw, path, limits)
    pages = _without_running_lines(pages)
    if not any(pages):
        raise CorpusFileError(f"{path}: PDF without text (scanned pages? it needs OCR first)")
    return article_text(*_titled(metadata_title, _blocks(pages), path))


def _read(raw: bytes, path: Path, limits: ReadLimits) -> tuple[str, list[list[Line]]]:
    """The metadata's title and the lines of each page (pypdf's errors on damaged files: a refusal)."""
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise CorpusFileError(f"{path}: encrypted PDF (it needs a password)")
        if len(reader.pages) > limits.max_pages:
            raise CorpusFileError(f"{path}: {len(reader.pages)} pages, more than the limit of {limits.max_pages} (QA_MAX_PAGES)")
        title = one_line(str(reader.metadata.title or "")) if reader.metadata else ""
        return title, [_page_lines(page) for page in reader.pages]
    except CorpusFileError:
        raise
    except Exception as error:  # pypdf raises many kinds (PdfReadError, KeyError, ValueError…) on damaged files
        raise CorpusFileError(f"{path}: cannot be read as a PDF ({type(error).__name__}: {error})") from error


def _page_lines(page) -> list[Line]:
    """A page's non-empty lines, each placed by its first piece of text."""
    lines: list[Line] = []
    pieces: list[tuple[str, float, float, bool, float]] = []

    def end_line() -> None:
        text = one_line("".join(c for p in pieces for c in p[0] if unicodedata.category(c) not in _NOT_TEXT))
        if text:
            first = next(p for p in pieces if p[0].strip())
            lines.append(Line(text, first[1], max(p[2] for p in pieces if p[0].strip()), first[3], first[4]))
        pieces.clear()

    def visit(text: str, cm, tm, font, size) -> None:
        x, y = mult(tm, cm)[4:6]
        bold = "bold" in str((font or {}).get("/BaseFont", "")).casefold()
        for number, part in enumerate(text.split("\n")):
            if number:
                end_line()
            if part:
                pieces.append((part, y, float(size or 0), bold, x))

    page.extract_text(visitor_text=visit)
    end_line()
    return lines


def _running_key(line: Line) -> str:
    return re.sub(r"\d+", "#", line.text.casefold())


def _without_running_lines(pages: list[list[Line]]) -> list[list[Line]]:
    """Pages without their page numbers and the header and footer lines that most pages repeat."""
    counts = Counter(key for lines in pages for key in set(map(_running_key, lines[:_EDGE_LINES] + lines[-_EDGE_LINES:])))
    repeated = {key for key, count in counts.items() if len(pages) >= 2 and count >= max(2, len(pages) / 2)}

    def running(line: Line, position: int, size: int) -> bool:
        at_edge = position < _EDGE_LINES or position >= size - _EDGE_LINES
        return at_edge and (_PAGE_NUMBER.match(line.text) is not None or _running_key(line) in repeated)

    return [[line for i, line in enumerate(lines) if not running(line, i, len(lines))] for lines in pages]


def _titled(title: str, blocks: list[Block], path: Path) -> tuple[str, list[Block]]:
    """The document's title (its metadata's, else a first heading, which is then not a
    section, else the file's name) and its blocks."""
    if title and not _UNTITLED.match(title):
        printed = blocks and blocks[0].heading and one_line(blocks[0].text).casefold() == title.casefold()
        return title, blocks[1:] if printed else blocks
    if blocks and blocks[0].heading:
        return blocks[0].text, blocks[1:]
    return path.stem, blocks


@dataclass(frozen=True)
class _Layout:
    """What a document's body text looks like: its font size, line spacing and full line length."""

    size: float
    spacing: float | None
    full: int
    margin: float | None  # where most lines start

    @classmethod
    def of(cls, pages: list[list[Line]]) -> "_Layout":
        sizes = Counter()
        for line in (line for lines in pages for line in lines):
            sizes[round(line.size, 1)] += len(line.text)
        size = sizes.most_common(1)[0][0] if sizes else 0.0
        gaps = [a.y - b.y for lines in pages for a, b in zip(lines, lines[1:])
                if a.y is not None and b.y is not None and round(a.size, 1) == round(b.size, 1) == size and a.y > b.y]
        lengths = sorted(len(line.text) for lines in pages for line in lines)
        starts = Counter(round(line.x) for lines in pages for line in lines if line.x is not None)
        return cls(size, statistics.median(gaps) if gaps else None, lengths[int(len(lengths) * 0.9)] if lengths else 0,
                   starts.most_common(1)[0][0] if starts else None)

    def is_heading(self, line: Line) -> bool:
        """A line in a larger font than the body's, or bold in a body that is not, short, with no final punctuation."""
        emphasised = line.size >= _HEADING_SIZE * self.size or (line.bold and round(line.size, 1) == self.size)
        return (emphasised and len(line.text.split()) <= 15 and not _NO_HEADING_END.search(line.text)
                and not _PAGE_NUMBER.match(line.text))

    def breaks_after(self, line: Line, following: Line | None) -> bool:
        """Whether a paragraph ends after ``line`` (``following``: the next line on its page, or
        the first of the next page)."""
        if following is not None and following.x is not None and self.margin is not None and line.x is not None:
            if abs(line.x - self.margin) < 1 and following.x - self.margin > 0.5 * self.size:
                return True  # the next line is indented: a paragraph's first line
        if following is not None and line.y is not None and following.y is not None and self.spacing:
            gap = line.y - following.y
            if 0 < gap <= 3 * self.spacing or round(line.size, 1) != round(following.size, 1):
                return gap > _PARAGRAPH_GAP * self.spacing or round(line.size, 1) != round(following.size, 1)
        return _SENTENCE_END.search(line.text) is not None and len(line.text) < _SHORT * self.full


def _blocks(pages: list[list[Line]]) -> list[Block]:
    """Paragraphs (and headings) joined back from the printed lines, each with its first page."""
    layout = _Layout.of(pages)
    blocks: list[Block] = []
    lines: list[tuple[str, int]] = []  # a paragraph's lines, each with its page
    previous = None

    def end_paragraph() -> None:
        if lines:
            text, starts = join_lines([text for text, _ in lines])
            breaks = tuple((at, page) for at, (_, page), (_, before) in zip(starts[1:], lines[1:], lines) if page != before)
            blocks.append(Block(text, page=lines[0][1], page_breaks=breaks))
            lines.clear()

    for page, page_lines in enumerate(pages, start=1):
        for number, line in enumerate(page_lines):
            heading = layout.is_heading(line)
            if heading and not lines and blocks and blocks[-1].heading and previous.size == line.size:
                blocks[-1] = Block(f"{blocks[-1].text} {line.text}", heading=True, page=page)  # a heading on two lines
            elif heading:
                end_paragraph()
                blocks.append(Block(line.text, heading=True, page=page))
            previous = line
            if heading:
                continue
            lines.append((line.text, page))
            following = page_lines[number + 1] if number + 1 < len(page_lines) else _first_line(pages, page)
            if layout.breaks_after(line, following):
                end_paragraph()
    end_paragraph()
    return blocks


def _first_line(pages: list[list[Line]], page: int) -> Line | None:
    """The first line of the pages after page ``page`` (numbered from 1), without its position
    (a space to a line on another page says nothing)."""
    line = next((lines[0] for lines in pages[page:] if lines), None)
    return line and Line(line.text, None, line.size, line.bold, line.x)


def join_lines(lines: list[str]) -> tuple[str, list[int]]:
    """Printed lines as one paragraph (a word hyphenated at a line's end joined back), and where
    each line starts in it."""
    text, starts = lines[0], [0]
    for line in lines[1:]:
        if re.search(r"\w[-\u00ad]$", text) and line[:1].islower():
            text = text[:-1]
        else:
            text = text.rstrip("\u00ad") + " "
        starts.append(len(text))
        text += line
    return text, starts
