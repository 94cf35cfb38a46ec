"""The fast encoder: the bundled model's vectors without sentence-transformers' imports (and, on
onnxruntime, without torch's: tests/test_store_onnx.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import torch

from conftest import dev_questions
from qa.config import Settings
from qa.store.encoder import Encoder, OnnxNetwork, TorchNetwork, supported, torch_encoder
from qa.store.model import bundled_model_dir, load_encoder


def test_the_encoder_gives_sentence_transformers_vectors(embedder, engine):
    encoder = torch_encoder(bundled_model_dir(Settings().model_cache))
    questions = [q["question"] for q in dev_questions()]
    passages = [p.text for p in engine.store.passages]  # 32 texts of very different lengths: padding
    for texts, prompt in ((questions, "query"), (passages, "passage"), (questions[:1], "query")):
        expected = embedder.encode(texts, prompt_name=prompt, normalize_embeddings=True, convert_to_numpy=True)
        actual = encoder.encode(texts, prompt_name=prompt, normalize_embeddings=True, convert_to_numpy=True)
        assert actual.dtype == np.float32 and actual.shape == expected.shape
        assert np.abs(actual - expected).max() < 1e-5
    assert encoder.get_embedding_dimension() == embedder.get_embedding_dimension() == 384


def test_answering_embeds_on_one_thread_unless_told_otherwise():
    encoder = load_encoder(Settings())
    assert isinstance(encoder, Encoder) and isinstance(encoder.network, OnnxNetwork)
    assert encoder.network.session.get_session_options().intra_op_num_threads == 1
    assert load_encoder(Settings(torch_threads=2)).network.session.get_session_options().intra_op_num_threads == 2


def test_another_folder_is_embedded_in_torch_and_one_the_encoder_cannot_reproduce_by_sentence_transformers(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(bundled_model_dir(Settings().model_cache), folder)
    assert supported(folder)
    pooling = folder / "1_Pooling" / "config.json"
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        other = load_encoder(Settings(model=str(folder)))  # a folder of its own: plain torch, one thread
        assert isinstance(other.network, TorchNetwork) and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    pooling.write_text(json.dumps({**json.loads(pooling.read_text()), "pooling_mode": "cls"}), "utf-8")
    assert not supported(folder)
    assert type(load_encoder(Settings(model=str(folder)))).__name__ == "SentenceTransformer"
