"""Fitting the calibration: Platt scaling gives probabilities that match the frequencies, the
threshold is the lowest confidence whose answers are right often enough, and a calibration
needs articles to leave out."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import DEV_QUESTIONS, run_command
from qa.answer.judge import Calibration
from qa.train.calibration import lowest_reaching, platt, reliability_table


def test_platt_scaling_learns_a_probability_that_matches_the_frequencies():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=4000) * 3
    right = (rng.random(4000) < 1 / (1 + np.exp(-(1.5 * scores - 1)))).astype(float)
    slope, intercept = platt(scores, right)
    assert slope == pytest.approx(1.5, abs=0.2) and intercept == pytest.approx(-1, abs=0.2)
    calibration = Calibration(slope, intercept, 0.5, ())
    table = reliability_table(np.array([calibration.confidence(s) for s in scores]), right)
    for row in table:
        if row["answers"] > 200:
            assert row["share_right"] == pytest.approx(row["mean_confidence"], abs=0.05)


def test_the_threshold_is_the_lowest_confidence_whose_answers_are_right_often_enough():
    confidence = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    right = np.array([1, 1, 1, 0, 1, 0], dtype=float)
    assert lowest_reaching(confidence, right, 0.8) == 0.6  # 4 of the 5 answers at 0.6 or more are right
    assert lowest_reaching(confidence, right, 1.0) == 0.8
    assert lowest_reaching(confidence, np.zeros(6), 0.5) == 1.0  # never reached: nothing is shown


def test_calibrate_refuses_questions_of_a_single_article(index_dir, capsys, tmp_path):
    status, _, err = run_command(capsys, "--index", index_dir, "calibrate", DEV_QUESTIONS, "--output", tmp_path / "c.json")
    assert status == 1 and "at least two articles" in err and not (tmp_path / "c.json").exists()
