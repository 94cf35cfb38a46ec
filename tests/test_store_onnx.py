"""The ONNX exports: the query encoder on onnxruntime gives the torch encoder's vectors, exports
are cached and made again when what they come from changes or when a cached file is damaged,
and answering a question imports neither torch nor transformers once they are there."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from conftest import ROOT, dev_questions
from qa.config import Settings
from qa.store.encoder import torch_encoder
from qa.store.model import bundled_model_dir, load_encoder
from qa.store.onnx_cache import CacheError, made, opened

# int8 (dynamic quantisation of every MatMul) moves the question vectors: measured on
# eval/dev.jsonl, eval/dev2.jsonl and PIAF-dev, cosine to the fp32 vectors 0.98-0.99.
INT8_COSINE = 0.97


def test_the_onnx_encoder_gives_the_torch_encoders_vectors(engine):
    settings = Settings()
    texts = [q["question"] for q in dev_questions()] + [p.text for p in engine.store.passages[:6]]  # long texts: padding
    expected = torch_encoder(bundled_model_dir(settings.model_cache)).encode(texts, prompt_name="query", normalize_embeddings=True)
    fp32 = load_encoder(replace(settings, encoder_precision="fp32")).encode(texts, prompt_name="query", normalize_embeddings=True)
    assert fp32.dtype == np.float32 and fp32.shape == expected.shape
    assert (fp32 * expected).sum(1).min() >= 0.999 and np.abs(fp32 - expected).max() < 1e-5
    int8 = load_encoder(replace(settings, encoder_precision="int8")).encode(texts, prompt_name="query", normalize_embeddings=True)
    assert (int8 * expected).sum(1).min() >= INT8_COSINE


def test_a_file_is_made_once_and_a_damaged_one_is_made_again(tmp_path):
    made_times = []

    def make(path):
        made_times.append(path)
        np.save(path, np.ones((2, 3), dtype=np.float32))

    target = tmp_path / "onnx" / "table.npy"
    assert opened(target, make, np.load).shape == (2, 3)
    assert opened(target, make, np.load).shape == (2, 3) and len(made_times) == 1
    assert not any(p.name.startswith(".") for p in target.parent.iterdir())  # no temporary left
    target.write_bytes(target.read_bytes()[:20])  # truncated, as by a full disk
    assert opened(target, make, np.load).shape == (2, 3) and len(made_times) == 2


def test_an_export_that_fails_leaves_no_file_and_says_which(tmp_path):
    def make(path):
        path.write_bytes(b"half")
        raise RuntimeError("exporter crashed")

    target = tmp_path / "onnx" / "reader.fp32.onnx"
    with pytest.raises(CacheError, match=r"could not make .*reader\.fp32\.onnx: exporter crashed"):
        made(target, make)
    assert list(target.parent.iterdir()) == [target.parent / "export.lock"]


def test_a_damaged_cached_encoder_is_exported_again(tmp_path):
    """A truncated ONNX file (a copy of the cached export in a cache of its own) is made again
    rather than crashing the first question."""
    settings = Settings()
    cache = private_cache(tmp_path, settings.model_cache, "encoder-*.fp32.onnx")
    cached = next((cache / "onnx").glob("encoder-*.fp32.onnx"))
    cached.write_bytes(cached.read_bytes()[: 1 << 20])
    vectors = load_encoder(replace(settings, model_cache=cache)).encode(["Quelle est la longueur de la frontière ?"], prompt_name="query")
    assert cached.stat().st_size > 1 << 24
    expected = load_encoder(settings).encode(["Quelle est la longueur de la frontière ?"], prompt_name="query")
    assert np.abs(vectors - expected).max() < 1e-6


def private_cache(tmp_path, cache, *copied: str):
    """A model cache of its own: the converted model and the word table linked from ``cache``,
    copies of the cached exports matching the ``copied`` patterns."""
    private = tmp_path / "cache"
    (private / "onnx").mkdir(parents=True)
    folder = bundled_model_dir(cache)
    (private / folder.name).symlink_to(folder)
    for table in (cache / "onnx").glob("words-*.npy"):
        (private / "onnx" / table.name).symlink_to(table)
    for pattern in copied:
        for export in (cache / "onnx").glob(pattern):
            (private / "onnx" / export.name).write_bytes(export.read_bytes())
    return private


def test_asking_imports_neither_torch_nor_transformers(index_dir, engine):
    """What makes `citeqa ask` start fast, once the exports are cached (the engine fixture made them)."""
    script = ("import sys; from qa.tools.cli import main; "
              f"status = main(['--index', {str(index_dir)!r}, 'ask', '--json', 'Quelle est la longueur de la frontière ?']); "
              "print(sorted(m for m in ('torch', 'transformers', 'peft', 'sentence_transformers', 'sklearn', 'onnx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()
    answer = json.loads(next(line for line in out if line.startswith("{")))
    assert answer["answered"] and "846" in answer["answer_sentence"]
    assert out[-1] == "[]"
