"""The XLM-RoBERTa / BERT encoder in plain torch, from a state dict: what the query encoder and the
reader compute, and what ``qa.store.onnx_export`` exports to ONNX.

The word-embedding lookup stays outside (``qa.store.encoder.WordEmbeddings``): the networks take
each token's word vector, so the large table is memory-mapped once and shared by the query encoder
and the reader instead of being loaded into each. Positions are numbered from the attention mask
(RoBERTa: from ``padding_idx + 1``, padding at ``padding_idx``; BERT: 0, 1, …), as
transformers numbers them for right-padded batches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional


WORDS = "embeddings.word_embeddings.weight"  # the table looked up outside the networks


@dataclass(frozen=True)
class EncoderShape:
    """What a state dict does not say about its encoder."""

    heads: int
    layers: int
    eps: float
    xlm_roberta: bool  # positions from the mask (RoBERTa) rather than 0, 1, … (BERT)
    pad_id: int

    @classmethod
    def of(cls, config: dict, layers: int | None = None) -> "EncoderShape":
        """The shape a transformers ``config.json`` describes (its first ``layers`` layers)."""
        return cls(config["num_attention_heads"], layers or config["num_hidden_layers"], config["layer_norm_eps"],
                   config["model_type"] == "xlm-roberta", config.get("pad_token_id", 0) or 0)


class Transformer(torch.nn.Module):
    """Embeddings (without the word lookup) and the first ``shape.layers`` layers: hidden states."""

    def __init__(self, weights: dict[str, torch.Tensor], shape: EncoderShape) -> None:
        super().__init__()
        self.shape = shape
        self.width = int(weights["embeddings.LayerNorm.weight"].shape[0])  # a constant for the exporter
        for name, tensor in weights.items():
            if name != WORDS and (name.startswith("embeddings.") or _layer(name) < shape.layers):
                self.register_buffer(name.replace(".", "__"), tensor.detach().float().contiguous())

    def weight(self, name: str) -> torch.Tensor:
        return getattr(self, name.replace(".", "__"))

    def forward(self, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        shape = self.shape
        if shape.xlm_roberta:
            positions = torch.cumsum(mask, dim=1) * mask + shape.pad_id
        else:
            positions = torch.cumsum(torch.ones_like(mask), dim=1) - 1
        hidden = words + self.weight("embeddings.position_embeddings.weight")[positions] + self.weight("embeddings.token_type_embeddings.weight")[0]
        hidden = self.layer_norm(hidden, "embeddings.LayerNorm")
        batch, length, width = hidden.shape[0], hidden.shape[1], self.width
        head = width // shape.heads
        additive = (1.0 - mask[:, None, None, :].to(hidden.dtype)) * torch.finfo(hidden.dtype).min
        for number in range(shape.layers):
            p = f"encoder.layer.{number}."
            q, k, v = (self.linear(hidden, p + f"attention.self.{name}").view(batch, length, shape.heads, head).transpose(1, 2)
                       for name in ("query", "key", "value"))
            context = functional.scaled_dot_product_attention(q, k, v, attn_mask=additive, scale=1 / math.sqrt(head))
            context = context.transpose(1, 2).reshape(batch, length, width)
            hidden = self.layer_norm(self.linear(context, p + "attention.output.dense") + hidden, p + "attention.output.LayerNorm")
            inner = functional.gelu(self.linear(hidden, p + "intermediate.dense"))
            hidden = self.layer_norm(self.linear(inner, p + "output.dense") + hidden, p + "output.LayerNorm")
        return hidden

    def linear(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return functional.linear(x, self.weight(name + ".weight"), self.weight(name + ".bias"))

    def layer_norm(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return functional.layer_norm(x, (self.width,), self.weight(name + ".weight"), self.weight(name + ".bias"), self.shape.eps)


class MeanPooled(torch.nn.Module):
    """The query encoder: the mean of the hidden states over the mask (not normalised)."""

    def __init__(self, transformer: Transformer) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, words: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.transformer(words, mask)
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


class SpanScores(torch.nn.Module):
    """The reader: each token's start and end score, from the span head ``qa_outputs``."""

    def __init__(self, transformer: Transformer, head_weight: torch.Tensor, head_bias: torch.Tensor) -> None:
        super().__init__()
        self.transformer = transformer
        self.register_buffer("head_weight", head_weight.detach().float().contiguous())
        self.register_buffer("head_bias", head_bias.detach().float().contiguous())

    def forward(self, words: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = functional.linear(self.transformer(words, mask), self.head_weight, self.head_bias)
        return logits[..., 0], logits[..., 1]


def _layer(name: str) -> int:
    """The layer number of an ``encoder.layer.N.…`` weight (a large number for any other)."""
    parts = name.split(".")
    return int(parts[2]) if parts[:2] == ["encoder", "layer"] else 1 << 30
