"""The reader on onnxruntime reads as the network it was trained as (transformers' layers with its
two heads), on the windows real questions read; its export is reused, and made again when the
shipped weights change."""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file

from conftest import dev_questions
from qa.answer.reader import READER_DIR, WEIGHTS, Reader, ReaderManifest
from qa.config import Settings
from qa.store.model import ensure_bundled_model
from qa.store.reader_weights import unpack
from qa.train.reader import load_network
from test_store_onnx import private_cache

QUESTIONS = 12  # dev questions whose windows are compared: 36 windows


class Recording:
    """A reader that keeps what it was asked to read."""

    def __init__(self, reader: Reader) -> None:
        self.reader, self.asked = reader, []

    def read(self, question: str, texts: list[str]):
        self.asked.append((question, texts))
        return self.reader.read(question, texts)


@pytest.fixture(scope="module")
def windows(engine) -> list[tuple[str, list[str]]]:
    """(question, the texts of its windows) for the first dev questions, as answering reads them."""
    recording = Recording(engine.models.reader)
    models = engine.models
    engine.models = replace(models, reader=recording)
    try:
        for row in dev_questions()[:QUESTIONS]:
            engine.ask(row["question"])
    finally:
        engine.models = models
    return recording.asked


@functools.lru_cache(maxsize=1)
def training_network():
    """The network as ``qa train-reader`` trains it, holding the shipped weights, and its tokenizer."""
    from transformers import AutoTokenizer

    base_dir = ensure_bundled_model(Settings().model_cache)
    network = load_network(base_dir, adapter_rank=0).eval()
    weights = {name: torch.from_numpy(value) for name, value in unpack(load_file(str(READER_DIR / WEIGHTS))).items()}
    missing = network.load_state_dict({name.replace("encoder.", "encoder.encoder.", 1) if name.startswith("encoder.") else name: value
                                       for name, value in weights.items()}, strict=False).missing_keys
    assert all(name.startswith("encoder.embeddings.") for name in missing)  # the base's, frozen
    return network, AutoTokenizer.from_pretrained(str(base_dir)), ReaderManifest.read(READER_DIR)


def training_readings(question: str, texts: list[str]):
    """Start, end and answerability scores and offsets as the training network computes them."""
    network, tokenizer, manifest = training_network()
    encoded = tokenizer([question] * len(texts), texts, truncation="only_second", max_length=manifest.max_tokens,
                        padding=True, return_offsets_mapping=True, return_tensors="pt")
    with torch.inference_mode():
        starts, ends, answerable = network(encoded["input_ids"], encoded["attention_mask"])
    offsets = encoded["offset_mapping"].numpy().copy()
    for row in range(len(texts)):
        offsets[row][np.array([s != 1 for s in encoded.sequence_ids(row)])] = -1
    return starts.numpy(), ends.numpy(), answerable.numpy(), offsets


def test_the_onnx_reader_reads_as_the_trained_network(windows):
    fp32, int8 = (Reader.load(Settings(reader_precision=precision)) for precision in ("fp32", "int8"))
    same_span, same_side, read = 0, 0, 0
    for question, texts in windows:
        starts, ends, answerable, offsets = training_readings(question, texts)
        for i, (exact, quantised) in enumerate(zip(fp32.read(question, texts), int8.read(question, texts))):
            length = len(exact.offsets)  # transformers pads the batch as tokenizers does: same length
            assert np.array_equal(exact.offsets, offsets[i][:length]) and length == offsets.shape[1]
            assert np.abs(exact.start_logits - starts[i]).max() < 1e-3 and np.abs(exact.end_logits - ends[i]).max() < 1e-3
            assert abs(exact.answerable - answerable[i]) < 1e-3
            same_span += exact.best_span()[1:] == quantised.best_span()[1:]
            same_side += (exact.answerable > 0) == (quantised.answerable > 0)
            read += 1
    assert read >= 2 * QUESTIONS
    assert same_span >= 0.7 * read and same_side >= 0.9 * read  # int8: the same best span and answerability on most windows


def test_the_export_is_reused_and_made_again_when_the_weights_change(tmp_path):
    settings = Settings()
    Reader.load(settings)  # the shipped reader's export, made if missing
    cache = private_cache(tmp_path, settings.model_cache, "reader-*.fp32.onnx")
    private = replace(settings, model_cache=cache)
    shipped = sorted((cache / "onnx").glob("reader-*.fp32.onnx"))
    question, texts = "Quelle est la longueur de la frontière ?", ["La frontière entre les deux pays mesure 6 846 km."]
    before = Reader.load(private).read(question, texts)[0]
    assert sorted((cache / "onnx").glob("reader-*.fp32.onnx")) == shipped  # reused, not exported again

    folder = tmp_path / "reader"
    folder.mkdir()
    for path in READER_DIR.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    weights = load_file(str(folder / WEIGHTS))
    weights["spans.bias"] = weights["spans.bias"] + np.array([1.0, 0.0], dtype=np.float32)  # a "retrained" span head: start scores + 1
    save_file(weights, str(folder / WEIGHTS))
    after = Reader.load(private, folder).read(question, texts)[0]
    assert len(list((cache / "onnx").glob("reader-*.fp32.onnx"))) == len(shipped) + 1
    assert np.allclose(after.start_logits, before.start_logits + 1, atol=1e-4) and np.allclose(after.end_logits, before.end_logits, atol=1e-4)
