"""Training the reader: `qa train-reader` runs end to end on a small sample of both training
files, writes a reader that loads, and a stopped run resumes from its checkpoint."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT
from qa.answer.reader import Reader, ReaderManifest
from qa.config import Settings
from qa.train.reader import write_training_corpus

TRAINING_DATA = ROOT / "train" / "piaf-train.json"
EXTRA_DATA = ROOT / "train" / "piaf-train-extra.json"


def test_training_questions_include_english_and_unanswerable_ones(tmp_path):
    """SQuAD 2.0 questions join their paragraph: English ones with the French answer's offset,
    unanswerable ones without an answer but with their paragraph's place."""
    questions = write_training_corpus([TRAINING_DATA, EXTRA_DATA], tmp_path, limit=0)
    article = {path.stem: path.read_text("utf-8") for path in tmp_path.glob("*.md")}
    answered = [q for q in questions if q.answer]
    unanswerable = [q for q in questions if not q.answer]
    assert len(answered) == 5846 + 2371  # PIAF-train's questions and their English versions
    assert len(unanswerable) == 1096 and all(q.answer_start == -1 for q in unanswerable)
    assert all(article[q.doc_id][q.answer_start:].startswith(q.answer) for q in answered)
    assert all(0 < q.paragraph_start < len(article[q.doc_id]) for q in unanswerable)


def test_train_reader_runs_end_to_end_and_resumes(tmp_path):
    """Code, not quality: a few steps on 24 questions, the folder it writes loads, and a second
    run with the same data and settings resumes from the checkpoint and reuses the examples."""
    output = tmp_path / "reader"
    command = [sys.executable, "-m", "qa", "train-reader", str(TRAINING_DATA), str(EXTRA_DATA), "--work", str(tmp_path / "work"),
               "--output", str(output), "--limit", "24", "--layers", "2", "--batch", "8", "--checkpoint-every", "2"]
    first = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout.splitlines()[-1])
    assert summary["questions"] == 24 and summary["unanswerable_questions"] >= 1
    assert 10 <= summary["windows_with_answer"] < summary["windows"] and summary["steps"] >= 3
    assert "training" in first.stderr and "loss=" in first.stderr  # the progress bar and its loss
    manifest = ReaderManifest.read(output)
    assert manifest.layers == 2 and manifest.training["limit"] == 24
    assert manifest.training["files"] == ["piaf-train.json", "piaf-train-extra.json"]
    readings = Reader.load(Settings.from_env(), output).read("Qui ?", ["Pascal est né à Clermont.", "Le chat dort."])
    assert len(readings) == 2 and readings[0].best_span() is not None

    second = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    last_checkpoint = (summary["steps"] - 1) // 2 * 2
    assert f"resuming from step {last_checkpoint} of {summary['steps']}" in second.stdout + second.stderr
    assert json.loads(second.stdout.splitlines()[-1])["windows"] == summary["windows"]
