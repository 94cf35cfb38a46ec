"""One reader per file format, chosen by the file's suffix; each gives the same article text, so
that every format is parsed into the same Document (title, sections, paragraphs, notes, pages).

Adding a format is adding a reader here. A file is refused with a message naming it, never
skipped silently: a type no reader knows, a file over the size limit, or one its reader cannot read.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Callable

from qa.ingest.converted import ConvertedText, ReadLimits
from qa.ingest.documents import BLOCK, CorpusFileError, Document, Paragraph, Section, decoded_text, on_pages, parse_article, with_pages
from qa.ingest.read_docx import docx_text
from qa.ingest.read_html import html_text
from qa.ingest.read_pdf import pdf_text

Reader = Callable[[bytes, Path, ReadLimits], ConvertedText]


def plain_text(raw: bytes, path: Path, limits: ReadLimits) -> ConvertedText:
    """A Wikipedia article saved as text, or a Markdown one: already article text."""
    return ConvertedText(decoded_text(raw, path))


READERS: dict[str, Reader] = {
    ".txt": plain_text, ".md": plain_text, ".pdf": pdf_text, ".docx": docx_text, ".html": html_text, ".htm": html_text,
}
_MARKDOWN_HEADING = re.compile(r"^#{1,6} [^\n]*$")


def readable(path: Path) -> bool:
    """Whether some reader reads files of this type."""
    return path.suffix.lower() in READERS


def read_document(path: Path, limits: ReadLimits = ReadLimits()) -> Document:
    """Read and parse one article file of any known format, or raise CorpusFileError naming it."""
    raw, converted = _converted(path, limits)
    document = parse_article(converted.text, doc_id=path.stem, path=str(path), sha256=hashlib.sha256(raw).hexdigest())
    return with_pages(document, converted.page_starts).read_from(path.name)


def read_source(path: Path, article: Document, limits: ReadLimits = ReadLimits()) -> Section:
    """The full text of the source cited as footnote [n] (file ``<n>.<any known suffix>``), as a
    section whose paragraphs are all cited as [n] (each with its page, in a PDF)."""
    if not path.stem.isdigit() or int(path.stem) not in article.references:
        raise CorpusFileError(f"{path}: names no footnote of {Path(article.path).name} (expected <n>{path.suffix})")
    number = int(path.stem)
    _, converted = _converted(path, limits)
    text, file = converted.text, f"{path.parent.name}/{path.name}"
    paragraphs = tuple(
        Paragraph(m.group(), m.start(), m.end(), "source", (number,), file)
        for m in BLOCK.finditer(text)
        if m.group().strip() and not (path.suffix.lower() in _CONVERTED and _MARKDOWN_HEADING.match(m.group()))
    )
    return Section(f"[{number}] {article.references[number].text}", on_pages(paragraphs, converted.page_starts))


_CONVERTED = tuple(suffix for suffix, reader in READERS.items() if reader is not plain_text)  # their headings are ours, not text


def _converted(path: Path, limits: ReadLimits) -> tuple[bytes, ConvertedText]:
    """A file's bytes and its article text, or CorpusFileError saying why it cannot be read."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise CorpusFileError(f"{path}: unsupported file type {path.suffix or '(no suffix)'!r} "
                              f"(citeqa reads {', '.join(sorted(READERS))})")
    try:
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise CorpusFileError(f"{path}: {size / 1e6:.1f} MB, more than the limit of "
                                  f"{limits.max_file_bytes / 1e6:.1f} MB (QA_MAX_FILE_BYTES)")
        raw = path.read_bytes()
    except OSError as error:
        raise CorpusFileError(f"{path}: cannot be read ({error.strerror})") from error
    if not raw.strip():
        raise CorpusFileError(f"{path}: empty file")
    return raw, reader(raw, path, limits)
