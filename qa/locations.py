"""Where citeqa keeps its files: the project folder in a checkout, the user's folders once installed.

In a checkout (the folder above ``qa/`` holds ``corpus/`` and ``pyproject.toml``, as with
``pip install -e .``) everything is in the project folder. An installed wheel has no project
folder: it reads the article it ships (``qa/bundled_corpus/``, built from the checkout's
``corpus/``) and writes its index, feedback and converted model into the user's data and cache
folders (platformdirs: ``~/.local/share/citeqa`` and ``~/.cache/citeqa`` on Linux, after XDG_*).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import platformdirs

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
BUNDLED_CORPUS = PACKAGE_DIR / "bundled_corpus"  # only in a wheel: pyproject.toml maps it to corpus/


@dataclass(frozen=True)
class Locations:
    """The default places of citeqa's files (QA_* and the CLI's options override them)."""

    corpus: Path
    index: Path
    model_cache: Path
    feedback: Path
    jobs: Path  # the corpus changes asked for from the API or the chat, and their progress
    conversations: Path  # the chat's conversations, kept under their id (qa/tools/conversation_log.py)


def is_checkout(root: Path) -> bool:
    """Whether ``root``, the folder above the package, is citeqa's project folder."""
    return (root / "corpus").is_dir() and (root / "pyproject.toml").is_file()


def default_locations(root: Path = PROJECT_ROOT) -> Locations:
    """The project folder's files in a checkout; else the bundled article and the user's folders."""
    if is_checkout(root):
        return Locations(root / "corpus", root / "index", root / ".cache" / "models", root / "feedback.jsonl", root / ".cache" / "jobs",
                         root / ".cache" / "conversations")
    data = Path(platformdirs.user_data_dir("citeqa", appauthor=False))
    cache = Path(platformdirs.user_cache_dir("citeqa", appauthor=False))
    return Locations(BUNDLED_CORPUS, data / "index", cache / "models", data / "feedback.jsonl", data / "jobs", data / "conversations")


DEFAULT_LOCATIONS = default_locations()
