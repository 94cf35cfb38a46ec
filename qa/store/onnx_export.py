"""Exporting the torch networks (``qa.store.networks``) to ONNX, and their int8 versions.

Run only when a cached file is missing (``qa.store.onnx_cache``); answering never imports it.
The export is torch's TorchScript-based one (``dynamo=False``): it takes ``dynamic_axes`` for the
batch and token axes and needs neither onnxscript nor a torch.export trace of the model. int8 is
onnxruntime's dynamic quantisation: the weights of every MatMul stored as signed 8-bit integers
with one scale per tensor, the activations quantised per call.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

INPUTS = ("words", "attention_mask")
OPSET = 17
# The outputs of each network and their axes of any size.
POOLED = {"pooled": {0: "batch"}}
SPANS = {"start_logits": {0: "batch", 1: "tokens"}, "end_logits": {0: "batch", 1: "tokens"}}


def export_network(network: torch.nn.Module, width: int, outputs: dict[str, dict[int, str]], path: Path) -> None:
    """Write ``network`` (word vectors, attention mask → ``outputs``) to ``path`` as ONNX, with any
    batch size and length."""
    words, mask = torch.zeros(2, 7, width), torch.ones(2, 7, dtype=torch.long)
    axes = {**{name: {0: "batch", 1: "tokens"} for name in INPUTS}, **outputs}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation notice and tracer warnings on shapes
        torch.onnx.export(network.eval(), (words, mask), str(path), input_names=list(INPUTS), output_names=list(outputs),
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)


def quantise(source: Path, target: Path) -> None:
    """``source`` with its MatMul weights in int8 (onnxruntime's dynamic quantisation), at ``target``:
    per output channel, and in 7 bits (``reduce_range``) so that CPUs without VNNI, whose u8s8
    kernels can saturate on full-range weights, compute the same answers as those with it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8,
                     per_channel=True, reduce_range=True)


def write_words(table: torch.Tensor, path: Path) -> None:
    """The word-embedding table as a float32 ``.npy`` file (memory-mapped when answering)."""
    with open(path, "wb") as handle:
        np.save(handle, table.detach().float().numpy())
