"""Shared fixtures: the real model and a real index of the bundled corpus, built once per run."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers on two cores: one thread each, for them and the processes they start
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from qa.config import Settings  # noqa: E402
from qa.engine import build, open_engine  # noqa: E402
from qa.store.model import load_embedder  # noqa: E402
from qa.tools.cli import main  # noqa: E402

DEV_QUESTIONS = ROOT / "eval" / "dev.jsonl"
CORPUS_FILE = ROOT / "corpus" / "relations-kazakhstan-russie.txt"
# A second article, of one paragraph; alone, a corpus whose two texts (the passage and its
# sentence) embed in a fraction of a second, where the bundled article's 87 take some 20 s of a core.
BAIKONOUR = "# Baïkonour\n\nLe cosmodrome de Baïkonour est loué par la Russie au Kazakhstan jusqu'en 2050.\n"
BAIKONOUR_QUESTION = "Jusqu'à quand la Russie loue-t-elle Baïkonour ?"
# The modules that take longest (docs/measurements.md, "The test suite"), handed out first so that
# the two test workers end together; the others follow in their usual order.
LONGEST_FIRST = (
    "test_answer_many_articles.py", "test_store_postgres.py", "test_store_rebuilds.py", "test_train_reader.py",
    "test_packaging.py", "test_store_model.py", "test_tools_bench.py", "test_tools_serve.py", "test_store_onnx.py",
    "test_store_encoder.py", "test_answer_reader_onnx.py", "test_ui_chat.py", "test_tools_serve_writes.py", "test_ui_browser.py",
)


def pytest_configure(config):
    """pytest-xdist's loadscope hands out whole modules, by default the most tests first; here in
    collection order instead, which pytest_collection_modifyitems makes LONGEST_FIRST."""
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(items):
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: within a module, and for the others, the order stays


def run_command(capsys, *arguments: str) -> tuple[int, str, str]:
    """The command ``python -m qa ARGUMENTS`` run in this process (the same code, with the models
    it has loaded already): its exit status, standard output and standard error."""
    status = main([str(a) for a in arguments])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def dev_questions() -> list[dict]:
    return [json.loads(line) for line in DEV_QUESTIONS.read_text("utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def embedder():
    return load_embedder(Settings.from_env())


@pytest.fixture(scope="session")
def index_dir(tmp_path_factory, embedder) -> Path:
    """The index of the bundled corpus, built once per run: the test workers share it (the first
    builds it while the others wait), and no test writes into it (they copy it: private_corpus)."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above each worker's own
    folder = shared / "bundled-index"
    with open(shared / "bundled-index.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "CURRENT").exists():
            build(Settings.from_env(index=folder), embedder)
    return folder


def private_copy(folder: Path, index_dir: Path, embedder) -> Settings:
    """Settings for a copy of the bundled corpus in ``folder``, with an index built from it (a real
    build, started from a copy of the session's index so that it reuses its vectors)."""
    (folder / "corpus").mkdir()
    shutil.copy(CORPUS_FILE, folder / "corpus")
    settings = Settings.from_env(corpus=folder / "corpus", index=folder / "index")
    shutil.copytree(index_dir, settings.index)
    build(settings, embedder)
    return settings


def small_corpus(folder: Path) -> Settings:
    """Settings for a corpus of the BAIKONOUR article alone in ``folder``, and an empty index folder
    beside it: for the tests of a build that embeds every text again, where the bundled corpus's
    size is not what they test and would only add its 20 s."""
    (folder / "corpus").mkdir()
    (folder / "corpus" / "baikonour.md").write_text(BAIKONOUR, "utf-8")
    (folder / "index").mkdir()
    return Settings.from_env(corpus=folder / "corpus", index=folder / "index")


@pytest.fixture
def private_corpus(tmp_path, index_dir, embedder) -> Settings:
    """Settings for a private copy of the bundled corpus and its index (``private_copy``)."""
    return private_copy(tmp_path, index_dir, embedder)


@pytest.fixture(scope="session")
def engine(index_dir, embedder):
    return open_engine(Settings.from_env(index=index_dir), embedder)
