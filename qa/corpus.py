"""The corpus folder: which files are articles, read into Documents, with problems reported."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from qa.documents import CorpusFileError, Document, read_article

ARTICLE_SUFFIXES = (".txt", ".md")


@dataclass(frozen=True)
class Corpus:
    """The documents read from a folder, and the files that could not be read."""

    folder: Path
    documents: tuple[Document, ...]
    skipped: tuple[str, ...]  # one message per unreadable file


def article_files(folder: Path) -> list[Path]:
    """The article files of a corpus folder, in a stable order."""
    if not folder.is_dir():
        raise FileNotFoundError(f"corpus folder {folder} does not exist")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in ARTICLE_SUFFIXES)


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every article file, by name: what an index records to know it is stale."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in article_files(folder)}


def read_corpus(folder: Path) -> Corpus:
    """Read every article; an unreadable file is skipped with a message naming it."""
    documents, skipped = [], []
    for path in article_files(folder):
        try:
            documents.append(read_article(path))
        except CorpusFileError as error:
            skipped.append(str(error))
    return Corpus(folder, tuple(documents), tuple(skipped))
