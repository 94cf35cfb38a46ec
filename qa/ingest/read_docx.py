"""DOCX → article text (python-docx): headings as sections, paragraphs and tables in reading
order, footnote references as ``[n]`` and the footnotes as the notes.

A DOCX is a zip archive: its declared unpacked size is checked before anything is unpacked, so a
zip bomb is refused instead of filling the memory. python-docx has no footnotes API: the
footnotes part is read from the package with lxml.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import docx
from docx.table import Table
from docx.opc.constants import RELATIONSHIP_TYPE
from lxml import etree

from qa.ingest.converted import Block, ConvertedText, ReadLimits, article_text, one_line
from qa.ingest.documents import CorpusFileError

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_HEADING_STYLE = re.compile(r"^(heading|titre)\s*\d", re.IGNORECASE)
_TITLE_STYLES = ("title", "titre")


def docx_text(raw: bytes, path: Path, limits: ReadLimits) -> ConvertedText:
    """The article text of a Word document, or CorpusFileError saying why it cannot be read."""
    _check_archive(raw, path, limits)
    try:
        document = docx.Document(io.BytesIO(raw))
        footnote_ids: dict[str, int] = {}  # Word's footnote id → its number in reading order
        title, blocks = "", []
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                blocks.append(Block("\n".join(_row_text(row, footnote_ids) for row in item.rows)))
                continue
            style = (item.style.name if item.style is not None else "").casefold()
            text = one_line(_runs_text(item._p, footnote_ids))
            if style in _TITLE_STYLES and not title:
                title = text
            elif text:
                blocks.append(Block(text, heading=_HEADING_STYLE.match(style) is not None))
        notes = _footnotes(document, footnote_ids)
        title = title or one_line(document.core_properties.title or "") or path.stem
    except Exception as error:  # python-docx and lxml raise many kinds on a damaged package
        raise CorpusFileError(f"{path}: cannot be read as a Word document ({type(error).__name__}: {error})") from error
    if not blocks:
        raise CorpusFileError(f"{path}: Word document without text")
    return article_text(title, blocks, notes)


def _check_archive(raw: bytes, path: Path, limits: ReadLimits) -> None:
    """Refuse what is not a zip archive, or one that would unpack to more than the limit."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, EOFError) as error:
        raise CorpusFileError(f"{path}: not a Word document (not a DOCX zip archive: {error})") from error
    if unpacked > limits.max_unpacked_bytes:
        raise CorpusFileError(f"{path}: would unpack to {unpacked / 1e6:.0f} MB, more than the limit of "
                              f"{limits.max_unpacked_bytes / 1e6:.0f} MB (QA_MAX_UNPACKED_BYTES)")


def _runs_text(element, footnote_ids: dict[str, int]) -> str:
    """The visible text under an element, a footnote reference written ``[n]``."""
    parts = []
    for node in element.iter(f"{_W}t", f"{_W}tab", f"{_W}br", f"{_W}footnoteReference"):
        if node.tag == f"{_W}t":
            parts.append(node.text or "")
        elif node.tag == f"{_W}footnoteReference":
            number = footnote_ids.setdefault(node.get(f"{_W}id"), len(footnote_ids) + 1)
            parts.append(f"[{number}]")
        else:
            parts.append(" ")
    return "".join(parts)


def _row_text(row, footnote_ids: dict[str, int]) -> str:
    cells = dict.fromkeys(one_line(_runs_text(cell._tc, footnote_ids)) for cell in row.cells)  # merged cells repeat
    return " | ".join(c for c in cells if c)


def _footnotes(document, footnote_ids: dict[str, int]) -> dict[int, str]:
    """The text of each footnote referenced in the body, by its number."""
    parts = [rel.target_part for rel in document.part.rels.values() if rel.reltype == RELATIONSHIP_TYPE.FOOTNOTES and not rel.is_external]
    if not parts or not footnote_ids:
        return {}
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    root = etree.fromstring(parts[0].blob, parser)
    notes = {}
    for footnote in root.iter(f"{_W}footnote"):
        number = footnote_ids.get(footnote.get(f"{_W}id"))
        if number is not None:
            notes[number] = one_line(" ".join(_runs_text(p, {}) for p in footnote.iter(f"{_W}p")))
    return notes
