"""The reader on onnxruntime reads as the merged transformers reader did, on the windows real
questions read; its export is reused, and made again when the adapters change."""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import dev_questions
from qa.answer.reader import ADAPTERS, READER_DIR, Reader, ReaderManifest, merged_reader, reader_tokenizer
from qa.config import Settings
from qa.store.model import ensure_bundled_model
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
def transformers_reader():
    """The merged transformers reader and its tokenizer, as ``Reader`` read before the export."""
    base_dir, manifest = ensure_bundled_model(Settings().model_cache), ReaderManifest.read(READER_DIR)
    return merged_reader(READER_DIR.resolve(), base_dir, manifest.layers), reader_tokenizer(base_dir), manifest


def transformers_readings(question: str, texts: list[str]):
    """Start and end scores and offsets as ``Reader.read`` computed them with transformers."""
    model, tokenizer, manifest = transformers_reader()
    encoded = tokenizer([question] * len(texts), texts, truncation="only_second", max_length=manifest.max_tokens,
                                         padding=True, return_offsets_mapping=True, return_tensors="pt")
    with torch.inference_mode():
        output = model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"])
    offsets = encoded["offset_mapping"].numpy().copy()
    for row in range(len(texts)):
        offsets[row][np.array([s != 1 for s in encoded.sequence_ids(row)])] = -1
    return output.start_logits.numpy(), output.end_logits.numpy(), offsets


def test_the_onnx_reader_reads_as_the_merged_transformers_reader(windows):
    fp32, int8 = (Reader.load(Settings(reader_precision=precision)) for precision in ("fp32", "int8"))
    same_span, read = 0, 0
    for question, texts in windows:
        starts, ends, offsets = transformers_readings(question, texts)
        for i, (exact, quantised) in enumerate(zip(fp32.read(question, texts), int8.read(question, texts))):
            length = len(exact.offsets)  # transformers pads the batch as tokenizers does: same length
            assert np.array_equal(exact.offsets, offsets[i][:length]) and length == offsets.shape[1]
            assert np.abs(exact.start_logits - starts[i]).max() < 1e-3 and np.abs(exact.end_logits - ends[i]).max() < 1e-3
            assert abs(exact.no_answer - (starts[i, 0] + ends[i, 0])) < 1e-3
            same_span += exact.best_span()[1:] == quantised.best_span()[1:]
            read += 1
    assert read >= 2 * QUESTIONS
    assert same_span >= 0.7 * read  # int8: the same best span on most windows (measured: 28 of 36)


def test_the_export_is_reused_and_made_again_when_the_adapters_change(tmp_path):
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
    adapters = load_file(str(folder / ADAPTERS))
    head = next(name for name in adapters if "qa_outputs" in name and name.endswith("bias"))
    adapters[head] = adapters[head] + torch.tensor([1.0, 0.0])  # a "retrained" span head: start scores + 1
    save_file(adapters, str(folder / ADAPTERS))
    after = Reader.load(private, folder).read(question, texts)[0]
    assert len(list((cache / "onnx").glob("reader-*.fp32.onnx"))) == len(shipped) + 1
    assert np.allclose(after.start_logits, before.start_logits + 1, atol=1e-4) and np.allclose(after.end_logits, before.end_logits, atol=1e-4)
