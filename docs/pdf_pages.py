"""Do PDF citations give the right page? For every sentence of every passage read from the PDFs of a
folder, whether the sentence starts on the page its passage cites (its first words are found in
that page's text, as pypdf extracts it). docs/measurements.md reports the figure::

    python tests/article_files.py eval/piaf-dev/corpus /tmp/piaf-pdf pdf
    python docs/pdf_pages.py /tmp/piaf-pdf
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from pypdf import PdfReader

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from qa.config import Settings  # noqa: E402
from qa.ingest.documents import CorpusFileError  # noqa: E402
from qa.ingest.passages import passages_for  # noqa: E402
from qa.ingest.readers import read_document  # noqa: E402
from qa.ingest.text import without_footnotes  # noqa: E402

FIRST_WORDS = 6


def printed(text: str) -> str:
    """Text as compared: words hyphenated across lines joined, any white space one space."""
    return " ".join(re.sub(r"(\w)-\n(?=[a-zà-ÿ])", r"\1", text).split())


def check(folder: Path, settings: Settings) -> dict[str, int]:
    counts = {"sentences": 0, "on_cited_page": 0, "on_another_page": 0, "not_found": 0}
    for path in sorted(folder.glob("*.pdf")):
        try:
            document = read_document(path)
        except CorpusFileError:
            continue  # refused (encrypted…): nothing cited
        pages = [printed(page.extract_text() or "") for page in PdfReader(path).pages]
        for passage in passages_for(document, settings.chunk_size, settings.chunk_overlap):
            for start, end in passage.sentences:
                words = " ".join(without_footnotes(passage.text[start:end]).split()[:FIRST_WORDS])
                counts["sentences"] += 1
                if words in pages[passage.page - 1]:
                    counts["on_cited_page"] += 1
                elif any(words in page for page in pages):
                    counts["on_another_page"] += 1
                else:
                    counts["not_found"] += 1
    return counts


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a folder of PDF files")
    counts = check(parser.parse_args().folder, Settings.from_env())
    found = counts["on_cited_page"] + counts["on_another_page"]
    print(counts, f"on the cited page: {counts['on_cited_page'] / max(1, found):.3f} of the sentences found in the PDF's text")
