"""HTML → article text: a saved Wikipedia page by its structure (qa/ingest/read_wikipedia.py), any
other page by its main text as trafilatura extracts it (docs/architecture.md says why).

trafilatura fails page by page: on a page built by JavaScript it returns the page's template
(``{{controller.content…}}``) or almost nothing. Such an extraction is refused with a message
rather than indexed.
"""

from __future__ import annotations

import re
from pathlib import Path

import trafilatura
from lxml import etree, html

from qa.ingest.converted import Block, ConvertedText, ReadLimits, article_text, one_line
from qa.ingest.documents import CorpusFileError
from qa.ingest.read_wikipedia import is_wikipedia, wikipedia_text

MIN_MAIN_TEXT_WORDS = 30  # fewer words of main text: the extraction failed (menus, a cookie banner…)
_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.DOTALL)
_MARKDOWN_HEADING = re.compile(r"^#{1,6}\s+")
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # not text, and lxml refuses to write them back
_EMPHASIS = re.compile(r"(\*{1,2}|_{2})(\S(?:.*?\S)?)\1")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|])")


def html_text(raw: bytes, path: Path, limits: ReadLimits) -> ConvertedText:
    """The article text of a saved web page, or CorpusFileError saying why it has none."""
    raw = _CONTROL.sub(b"", raw)
    try:
        tree = html.document_fromstring(raw)
    except (etree.ParserError, ValueError) as error:
        raise CorpusFileError(f"{path}: cannot be read as HTML ({error})") from error
    if is_wikipedia(tree):
        return wikipedia_text(tree, path)
    return _main_text(raw, path)


def _main_text(raw: bytes, path: Path) -> ConvertedText:
    """The page's main text (trafilatura, Markdown: headings, paragraphs, tables), and its title."""
    extracted = trafilatura.bare_extraction(raw, with_metadata=True, include_comments=False, include_tables=True,
                                            include_formatting=True, output_format="python")
    text = (extracted.text if extracted else "") or ""
    templated = sum(len(m) for m in _TEMPLATE.findall(text))
    if templated > 0.1 * len(text):
        raise CorpusFileError(f"{path}: the page's main text is its unfilled template ({text[:60]!r}…): "
                              "save the page after it has loaded, or as PDF")
    if len(text.split()) < MIN_MAIN_TEXT_WORDS:
        raise CorpusFileError(f"{path}: no main text found in the page ({len(text.split())} words extracted)")
    title = one_line(extracted.title or "") or path.stem
    return article_text(title, _blocks(text, title))


def _blocks(text: str, title: str) -> list[Block]:
    """trafilatura's lines as blocks: a Markdown heading is a section (the title's own is dropped),
    consecutive table rows one block, any other line a paragraph."""
    blocks: list[Block] = []
    for line in (one_line(_ESCAPE.sub(r"\1", _EMPHASIS.sub(r"\2", line))) for line in text.splitlines()):
        if not line or set(line) <= set("|-: "):
            continue
        if _MARKDOWN_HEADING.match(line):
            heading = _MARKDOWN_HEADING.sub("", line).strip("*_ ")
            if heading and heading != title:
                blocks.append(Block(heading, heading=True))
        elif line.startswith("|") and blocks and blocks[-1].text.startswith("|"):
            blocks[-1] = Block(blocks[-1].text + "\n" + line)
        else:
            blocks.append(Block(line))
    return blocks
