"""The corpus folder: which files are articles, read into Documents, with problems reported.

A corpus folder holds articles (``*.txt`` saved from Wikipedia, or ``*.md``). The full text of
a source an article cites may sit beside it as ``<article>.refs/<n>.txt``: its passages are then
cited as that article's footnote [n].
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from qa.ingest.documents import CorpusFileError, Document, read_article, read_source

ARTICLE_SUFFIXES = (".txt", ".md")
SOURCES_SUFFIX = ".refs"


@dataclass(frozen=True)
class Corpus:
    """The documents read from a folder, and the files that could not be read."""

    folder: Path
    documents: tuple[Document, ...]
    skipped: tuple[str, ...]  # one message per unreadable file
    files: dict[str, str]  # sha256 of every file seen (read or skipped), by path in the folder


def corpus_files(folder: Path) -> list[Path]:
    """The article files of a corpus folder and their sources, in a stable order."""
    if not folder.is_dir():
        raise FileNotFoundError(f"corpus folder {folder} does not exist")
    articles = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in ARTICLE_SUFFIXES)
    sources = sorted(p for a in articles for p in _sources_folder(a).glob("*.txt") if p.is_file())
    return articles + sources


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every corpus file, by path in the folder: what an index records to know it is stale."""
    return {p.relative_to(folder).as_posix(): _sha256(p) for p in corpus_files(folder)}


def read_corpus(folder: Path) -> Corpus:
    """Read every article and its sources; an unreadable file is skipped with a message naming it."""
    documents, skipped = [], []
    for path in (p for p in corpus_files(folder) if p.parent == folder):
        try:
            article = read_article(path)
        except CorpusFileError as error:
            skipped.append(str(error))
            continue
        sources = []
        for source_path in sorted(_sources_folder(path).glob("*.txt")):
            try:
                sources.append(read_source(source_path, article))
            except CorpusFileError as error:
                skipped.append(str(error))
        documents.append(article.with_sources(sources))
    return Corpus(folder, tuple(documents), tuple(skipped), file_hashes(folder))


def _sources_folder(article: Path) -> Path:
    return article.with_name(article.stem + SOURCES_SUFFIX)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
