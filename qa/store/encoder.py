"""A small torch encoder for sentence-transformers folders of the bundled kind, to load fast.

``SentenceTransformer(folder)`` costs several seconds of imports before any weight is read
(sentence-transformers pulls in transformers' model registry, scikit-learn, pandas and
scipy.stats). Answering questions needs none of it: this module reads the same folder
(``config.json``, ``tokenizer.json``, ``model.safetensors``) with ``tokenizers`` and
``safetensors`` and runs the XLM-RoBERTa / BERT encoder, mean pooling and normalisation in
plain torch. Its vectors equal sentence-transformers' to float rounding (tests/test_encoder.py).

Only folders it can reproduce exactly are accepted (``supported``): one Transformer module of
type xlm-roberta or bert with absolute positions, mean pooling including the prompt, optionally
a Normalize module. Anything else is loaded by sentence-transformers (``qa.store.model``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

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


class Encoder:
    """``encode`` and ``get_embedding_dimension`` as ``SentenceTransformer`` offers them, for
    one mean-pooled XLM-R/BERT folder (see ``supported``)."""

    def __init__(self, folder: Path) -> None:
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        self.folder = Path(folder)
        config = _json(self.folder / "config.json")
        settings = _json(self.folder / "config_sentence_transformers.json") if (self.folder / "config_sentence_transformers.json").is_file() else {}
        self.prompts: dict[str, str] = settings.get("prompts", {})
        self.normalize = len(_json(self.folder / "modules.json")) == 3
        self.heads = config["num_attention_heads"]
        self.layers = config["num_hidden_layers"]
        self.eps = config["layer_norm_eps"]
        self.xlm_roberta = config["model_type"] == "xlm-roberta"
        self.pad_id = config.get("pad_token_id", 0) or 0
        self.weights = load_file(str(self.folder / "model.safetensors"))
        self.dimension = config["hidden_size"]
        limit = config["max_position_embeddings"] - (self.pad_id + 1 if self.xlm_roberta else 0)
        limit = min(limit, int(_json(self.folder / "tokenizer_config.json").get("model_max_length", limit)))
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=limit)
        self.tokenizer.enable_padding(pad_id=self.pad_id, pad_token=self.tokenizer.id_to_token(self.pad_id))
        self.torch = torch

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
        with self.torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                vectors[rows] = self._embed([prompt + texts[i] for i in rows], normalize_embeddings).numpy()
        return vectors[0] if single else vectors

    def _embed(self, texts: list[str], normalize: bool):
        torch, w = self.torch, self.weights
        encodings = self.tokenizer.encode_batch(texts)
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long)
        if self.xlm_roberta:  # RoBERTa numbers positions from padding_idx + 1, padding stays at padding_idx
            positions = torch.cumsum(mask, dim=1) * mask + self.pad_id
        else:
            positions = torch.arange(ids.shape[1]).expand_as(ids)
        hidden = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][positions]
                  + w["embeddings.token_type_embeddings.weight"][0])
        hidden = self._layer_norm(hidden, "embeddings.LayerNorm")
        batch, length, width = hidden.shape
        head = width // self.heads
        additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        for number in range(self.layers):
            p = f"encoder.layer.{number}."
            q, k, v = (self._linear(hidden, p + f"attention.self.{name}").view(batch, length, self.heads, head).transpose(1, 2)
                       for name in ("query", "key", "value"))
            context = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=additive, scale=1 / math.sqrt(head))
            context = context.transpose(1, 2).reshape(batch, length, width)
            hidden = self._layer_norm(self._linear(context, p + "attention.output.dense") + hidden, p + "attention.output.LayerNorm")
            inner = torch.nn.functional.gelu(self._linear(hidden, p + "intermediate.dense"))
            hidden = self._layer_norm(self._linear(inner, p + "output.dense") + hidden, p + "output.LayerNorm")
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        if self.normalize or normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled

    def _linear(self, x, name: str):
        return self.torch.nn.functional.linear(x, self.weights[name + ".weight"], self.weights[name + ".bias"])

    def _layer_norm(self, x, name: str):
        return self.torch.nn.functional.layer_norm(x, (x.shape[-1],), self.weights[name + ".weight"], self.weights[name + ".bias"], self.eps)
