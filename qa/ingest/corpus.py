"""The corpus folder: which files are articles, read into Documents, with problems reported.

A corpus folder holds articles: Wikipedia pages saved as text (``*.txt``) or from the browser
(``*.html``), Markdown, PDF, Word or web pages (qa/ingest/readers.py). The full text of a source
an article cites may sit beside it as ``<article>.refs/<n>.<suffix>``: its passages are then
cited as that article's footnote [n]. Every other file or folder is named in a warning, and
counts for the index's staleness like the files that are read. Hidden files (``.name``) are not
part of the corpus.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from qa.ingest.converted import ReadLimits
from qa.ingest.documents import CorpusFileError, Document
from qa.ingest.readers import read_document, read_source, readable

SOURCES_SUFFIX = ".refs"


@dataclass(frozen=True)
class Corpus:
    """The documents read from a folder, and the files that could not be read."""

    folder: Path
    documents: tuple[Document, ...]
    skipped: tuple[str, ...]  # one message per unreadable file
    files: dict[str, str]  # sha256 of every file seen (read or skipped), by path in the folder


def corpus_files(folder: Path) -> list[Path]:
    """Every file of a corpus folder and of its articles' sources folders, in a stable order."""
    if not folder.is_dir():
        raise FileNotFoundError(f"corpus folder {folder} does not exist")
    articles = _visible(p for p in folder.iterdir() if p.is_file())
    sources = [p for folder in _sources_folders(folder) for p in _visible(folder.iterdir()) if p.is_file()]
    return articles + sources


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every corpus file, by path in the folder: what an index records to know it is stale."""
    return {p.relative_to(folder).as_posix(): _sha256(p) for p in corpus_files(folder)}


def read_corpus(folder: Path, limits: ReadLimits = ReadLimits()) -> Corpus:
    """Read every article and its sources; a file that cannot be read is skipped with a message naming it."""
    documents, skipped, names = [], [], {}
    for path in corpus_files(folder):
        if path.parent != folder:
            continue
        try:
            if path.stem in names and readable(path):
                raise CorpusFileError(f"{path}: same name as {names[path.stem]}: one of them must be renamed")
            article = read_document(path, limits)
        except CorpusFileError as error:
            skipped.append(str(error))
            continue
        names[path.stem] = path.name
        sources = []
        for source_path in (p for p in _visible(sources_folder(path).iterdir()) if p.is_file()) if sources_folder(path).is_dir() else ():
            try:
                sources.append(read_source(source_path, article, limits))
            except CorpusFileError as error:
                skipped.append(str(error))
        documents.append(article.with_sources(sources))
    skipped += [f"{p}: a folder, not read (only an article's sources are, in <article>{SOURCES_SUFFIX}/)"
                for p in _visible(folder.iterdir()) if p.is_dir() and p not in _sources_folders(folder)]
    return Corpus(folder, tuple(documents), tuple(skipped), file_hashes(folder))


def _visible(paths) -> list[Path]:
    return sorted(p for p in paths if not p.name.startswith("."))


def _sources_folders(folder: Path) -> list[Path]:
    """The ``<article>.refs`` folders of the folder's readable articles."""
    return [f for f in (sources_folder(p) for p in _visible(folder.iterdir()) if p.is_file() and readable(p)) if f.is_dir()]


def sources_folder(article: Path) -> Path:
    """The folder of an article's sources: ``<article>.refs`` beside it."""
    return article.with_name(article.stem + SOURCES_SUFFIX)


def _sha256(path: Path) -> str:
    with path.open("rb") as file:  # in chunks: a file over the size limit is hashed, not loaded
        return hashlib.file_digest(file, "sha256").hexdigest()
