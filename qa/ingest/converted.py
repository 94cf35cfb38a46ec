"""What every file reader hands to the parser: the document written as the Markdown article that
``parse_article`` reads (``# Title``, ``## Section``, paragraphs between blank lines, ``[n]``
markers, the notes as ``  n. text`` under « Notes et références »), and, for a paged format,
where each page begins in that text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from qa.config import Settings

NOTES_HEADING = "Notes et références"
_BLANK_LINES = re.compile(r"\n[ \t\u00a0]*\n+")
_SPACES = re.compile(r"[ \t\r\n\f\v]+")  # not the no-break space, which belongs to the text ("6 846 km")


@dataclass(frozen=True)
class ReadLimits:
    """What a reader refuses to open (Settings: max_file_bytes, max_pages, max_unpacked_bytes)."""

    max_file_bytes: int = Settings.max_file_bytes
    max_pages: int = Settings.max_pages
    max_unpacked_bytes: int = Settings.max_unpacked_bytes

    @classmethod
    def of(cls, settings: Settings) -> "ReadLimits":
        return cls(settings.max_file_bytes, settings.max_pages, settings.max_unpacked_bytes)


@dataclass(frozen=True)
class Block:
    """A heading or a paragraph read from a file (an infobox: several lines), with its page and
    the (offset in its text, page) of each later page it goes on to."""

    text: str
    heading: bool = False
    page: int | None = None
    page_breaks: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class ConvertedText:
    """A document as article text, and the (offset, page) where each page begins (none: no pages)."""

    text: str
    page_starts: tuple[tuple[int, int], ...] = ()


def one_line(text: str) -> str:
    """Any run of white space (but the no-break space) made one space; for text read from markup."""
    return _SPACES.sub(" ", text).strip()


def article_text(title: str, blocks: Iterable[Block], notes: dict[int, str] | None = None) -> ConvertedText:
    """The article text of a title, its blocks in reading order, and its numbered notes."""
    parts, page_starts, offset = [f"# {one_line(title)}"], [], 0
    for block in blocks:
        text = _BLANK_LINES.sub("\n", block.text).strip()
        if not text:
            continue
        text = f"## {one_line(text)}" if block.heading else text
        offset += len(parts[-1]) + 2
        for at, page in ((0, block.page), *block.page_breaks):
            if page is not None and (not page_starts or page_starts[-1][1] != page):
                page_starts.append((offset + at, page))
        parts.append(text)
    if notes:
        parts += [f"## {NOTES_HEADING}", "\n".join(f"  {n}. {one_line(text)}" for n, text in sorted(notes.items()) if one_line(text))]
    return ConvertedText("\n\n".join(parts) + "\n", tuple(page_starts))
