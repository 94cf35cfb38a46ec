"""Training the confidence models: the logistic fit gives probabilities that match the frequencies."""

from __future__ import annotations

import numpy as np
import pytest

from qa.train.confidence import fit_logistic, reliability_table


def test_a_logistic_model_learns_a_probability_that_matches_the_frequencies():
    rng = np.random.default_rng(0)
    signals = rng.normal(size=(4000, 2))
    labels = (rng.random(4000) < 1 / (1 + np.exp(-2 * signals[:, 0]))).astype(float)
    model = fit_logistic(signals, labels)
    table = reliability_table(model.probability(signals), labels)
    for row in table:
        if row["answers"] > 200:
            assert row["share_right"] == pytest.approx(row["mean_confidence"], abs=0.05)
