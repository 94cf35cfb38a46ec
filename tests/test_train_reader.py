"""Training the reader: `qa train-reader` runs end to end on a small sample and writes a reader that loads."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT
from qa.answer.reader import Reader, ReaderManifest
from qa.config import Settings

TRAINING_DATA = ROOT / "train" / "piaf-train.json"


def test_train_reader_runs_end_to_end_on_a_small_sample(tmp_path):
    """Code, not quality: a few steps on 12 questions, and the folder it writes loads."""
    output = tmp_path / "reader"
    result = subprocess.run(
        [sys.executable, "-m", "qa", "train-reader", str(TRAINING_DATA), "--work", str(tmp_path / "work"), "--output", str(output),
         "--limit", "12", "--layers", "2", "--batch", "8"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["questions"] == 12 and summary["windows_with_answer"] >= 10 and summary["steps"] >= 2
    assert "training" in result.stderr and "loss=" in result.stderr  # the progress bar and its loss
    manifest = ReaderManifest.read(output)
    assert manifest.layers == 2 and manifest.training["limit"] == 12
    readings = Reader.load(Settings.from_env(), output).read("Qui ?", ["Pascal est né à Clermont.", "Le chat dort."])
    assert len(readings) == 2 and readings[0].best_span() is not None
