"""The fast encoder: the bundled model's vectors without sentence-transformers' imports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import torch

from conftest import ROOT, dev_questions
from qa.config import Settings
from qa.store.encoder import Encoder, supported
from qa.store.model import bundled_model_dir, load_encoder


def test_the_encoder_gives_sentence_transformers_vectors(embedder, engine):
    encoder = Encoder(bundled_model_dir(Settings().model_cache))
    questions = [q["question"] for q in dev_questions()]
    passages = [p.text for p in engine.store.passages]  # 32 texts of very different lengths: padding
    for texts, prompt in ((questions, "query"), (passages, "passage"), (questions[:1], "query")):
        expected = embedder.encode(texts, prompt_name=prompt, normalize_embeddings=True, convert_to_numpy=True)
        actual = encoder.encode(texts, prompt_name=prompt, normalize_embeddings=True, convert_to_numpy=True)
        assert actual.dtype == np.float32 and actual.shape == expected.shape
        assert np.abs(actual - expected).max() < 1e-5
    assert encoder.get_embedding_dimension() == embedder.get_embedding_dimension() == 384


def test_answering_loads_the_encoder_with_one_torch_thread_unless_told_otherwise():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert isinstance(load_encoder(Settings()), Encoder)
        assert torch.get_num_threads() == 1
        load_encoder(Settings(torch_threads=2))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_folder_the_encoder_cannot_reproduce_goes_to_sentence_transformers(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(bundled_model_dir(Settings().model_cache), folder)
    assert supported(folder)
    pooling = folder / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps({**json.loads(pooling.read_text()), "pooling_mode": "cls"}), "utf-8")
    assert not supported(folder)
    assert type(load_encoder(Settings(model=str(folder)))).__name__ == "SentenceTransformer"


def test_answering_does_not_import_sentence_transformers():
    """What makes the app start fast: neither sentence-transformers nor scikit-learn is imported."""
    script = ("import sys; from qa.config import Settings; from qa.engine import open_engine; "
              "from qa.store.model import load_encoder; load_encoder(Settings()); "
              "print(sorted(m for m in ('sentence_transformers', 'sklearn', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
