"""Folds by article: a model is checked on articles it was not trained on."""

from __future__ import annotations

import numpy as np


def article_folds(articles: set[str], folds: int = 5, seed: int = 0) -> list[set[str]]:
    """The articles in ``folds`` groups (fewer if there are fewer articles), shuffled by ``seed``:
    each group in turn is left out of training."""
    order = sorted(articles)
    np.random.default_rng(seed).shuffle(order)
    count = min(folds, len(order))
    return [set(order[fold::count]) for fold in range(count)]
