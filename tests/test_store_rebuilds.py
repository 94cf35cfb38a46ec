"""Rebuilding the index as the corpus changes: incremental, atomic, locked, and safe with bad input."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from conftest import BAIKONOUR, BAIKONOUR_QUESTION, CORPUS_FILE, ROOT, run_command, small_corpus
from qa.config import Settings
from qa.engine import build, open_engine
from qa.store.folder import current_build, index_status, load_index


def article(settings: Settings):
    return settings.corpus / CORPUS_FILE.name


def test_editing_one_sentence_embeds_only_that_passage_and_sentence(private_corpus, embedder):
    text = article(private_corpus).read_text("utf-8")
    article(private_corpus).write_text(text.replace("La démarcation devrait prendre de dix à quinze ans.",
                                            "La démarcation devrait prendre de dix à vingt ans."), "utf-8")
    assert index_status(private_corpus).stale == (f"{CORPUS_FILE.name} changed",)
    report = build(private_corpus, embedder)
    assert report.embedded == 2  # the passage holding the sentence, and the sentence itself
    assert report.reused == report.passages + sum(len(p.sentences) for p in load_index(private_corpus.index).passages) - 2
    assert index_status(private_corpus).stale == ()
    assert "vingt ans" in open_engine(private_corpus, embedder).ask("Combien de temps prendra la démarcation ?").answer_sentence


def test_adding_and_removing_an_article(private_corpus, embedder):
    (private_corpus.corpus / "baikonour.md").write_text(BAIKONOUR, "utf-8")
    report = build(private_corpus, embedder)
    assert report.documents == 2
    assert report.embedded == 2  # one passage of one sentence: the passage and its sentence
    answer = open_engine(private_corpus, embedder).ask(BAIKONOUR_QUESTION)
    assert answer.passages[0].passage.title == "Baïkonour" and "2050" in answer.answer_sentence
    (private_corpus.corpus / "baikonour.md").unlink()
    report = build(private_corpus, embedder)
    assert (report.documents, report.embedded) == (1, 0)
    assert {p.doc_id for p in load_index(private_corpus.index).passages} == {CORPUS_FILE.stem}


def test_the_full_text_of_a_cited_source_is_cited_as_its_footnote(private_corpus, embedder):
    sources = private_corpus.corpus / f"{CORPUS_FILE.stem}.refs"
    sources.mkdir()
    (sources / "8.txt").write_text("Le pétrole kazakh passe par l'oléoduc CPC vers Novorossiïsk, qui transporte 1,2 million de barils par jour.\n", "utf-8")
    build(private_corpus, embedder)
    answer = open_engine(private_corpus, embedder).ask("Combien de barils par jour transporte l'oléoduc CPC ?")
    top = answer.passages[0]
    assert top.passage.kind == "source" and top.passage.file == f"{CORPUS_FILE.stem}.refs/8.txt"
    assert [f.number for f in answer.answer_footnotes] == [8]
    assert "Les Echos" in answer.answer_footnotes[0].reference
    assert top.passage.section.startswith("[8] Yves Bourdillon")


def run_build(settings: Settings, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "qa", "--corpus", str(settings.corpus), "--index", str(settings.index), "build", *extra]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_build_killed_mid_way_leaves_the_old_index_answering(private_corpus, embedder):
    before = current_build(private_corpus.index)
    process = run_build(private_corpus, "--full")
    seen = ""
    while "embedding [" not in seen:  # wait until it is embedding: well into the build
        char = process.stderr.read(1)
        assert char, f"the build ended before embedding: {seen}"
        seen += char
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert current_build(private_corpus.index) == before
    assert "6 846" in open_engine(private_corpus, embedder).ask("Quelle est la longueur de la frontière ?").answer_sentence.replace("\u00a0", " ")
    report = build(private_corpus, embedder)  # the next build cleans up after the killed one
    assert report.embedded == 0
    assert [p.name for p in private_corpus.index.iterdir() if p.name.startswith((".build-", ".CURRENT."))] == []


def test_two_builds_at_once_end_with_one_valid_index(private_corpus):
    (private_corpus.corpus / "baikonour.md").write_text(BAIKONOUR, "utf-8")
    first, second = run_build(private_corpus, "--full"), run_build(private_corpus)  # the second waits, then reuses the first's vectors
    for process in (first, second):
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
    index = load_index(private_corpus.index)
    assert index.manifest.documents == 2
    assert [p.name for p in private_corpus.index.iterdir() if p.name.startswith("build-")] == [index.folder.name]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.txt", b"", "empty file"),
        ("image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        ("latin1.txt", "Ça coûte cher\n\nÉté".encode("latin-1"), "not UTF-8"),
        ("title-only.md", b"# Un titre seul\n", "no text after the title"),
    ],
)
def test_an_unreadable_file_is_skipped_with_a_warning_naming_it(private_corpus, embedder, name, content, message, capsys):
    (private_corpus.corpus / name).write_bytes(content)
    report = build(private_corpus, embedder)
    assert len(report.skipped) == 1 and name in report.skipped[0] and message in report.skipped[0]
    assert report.documents == 1
    status, _, err = run_command(capsys, "--corpus", private_corpus.corpus, "--index", private_corpus.index, "build")
    assert status == 0 and f"warning: skipped {private_corpus.corpus / name}: {message}" in err


@pytest.mark.parametrize("damaged", ["vectors.faiss", "passages.json", "sentences.npy"])
def test_a_corrupted_index_is_rebuilt_not_crashed_on(tmp_path, embedder, damaged):
    settings = small_corpus(tmp_path)  # its every text is embedded again: a corpus that takes a moment
    build(settings, embedder)
    path = current_build(settings.index) / damaged
    path.write_bytes(path.read_bytes()[:100])
    assert "unreadable" in index_status(settings).problem
    report = build(settings, embedder)
    assert (report.reused, report.embedded) == (0, 2)
    assert index_status(settings).problem is None
    assert "2050" in open_engine(settings, embedder).ask(BAIKONOUR_QUESTION).answer_sentence


def test_an_index_of_another_model_is_not_reused_and_is_refused(private_corpus, embedder):
    other = Settings.from_env(corpus=private_corpus.corpus, index=private_corpus.index, model="some/other-model")
    with pytest.raises(Exception, match="built with model 'bundled:multilingual-e5-small'"):
        open_engine(other, embedder)


def test_status_on_the_command_line(private_corpus):
    result = subprocess.run([sys.executable, "-m", "qa", "--corpus", str(private_corpus.corpus), "--index", str(private_corpus.index), "status"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0
    assert "documents: 1" in result.stdout and "no, up to date" in result.stdout
    article(private_corpus).write_text(article(private_corpus).read_text("utf-8") + "\nUne ligne de plus.\n", "utf-8")
    result = subprocess.run([sys.executable, "-m", "qa", "--corpus", str(private_corpus.corpus), "--index", str(private_corpus.index), "status"],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert f"{CORPUS_FILE.name} changed" in result.stdout
