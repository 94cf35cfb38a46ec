"""The shipped reader's weights on disk: each large matrix in int8, one scale per output row.

12 fine-tuned layers are 21 M parameters, 85 MB in float32; in int8 they are 21 MB, under the
25 MB a model committed to the project may weigh. A matrix ``name`` is stored as ``name`` (int8)
and ``name.scale`` (float32, one per row); biases, layer norms and the small heads stay float32.
Answering runs the int8 ONNX export anyway, so the rounding costs nothing measurable there.
"""

from __future__ import annotations

import numpy as np

SCALE = ".scale"
SMALLEST_PACKED = 4096  # matrices with fewer values stay float32


def pack(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The tensors of ``state`` as stored: large matrices in int8 with their row scales."""
    stored = {}
    for name, value in state.items():
        value = np.asarray(value, dtype=np.float32)
        if value.ndim == 2 and value.size >= SMALLEST_PACKED:
            scale = np.maximum(np.abs(value).max(axis=1), 1e-12) / 127
            stored[name] = np.clip(np.rint(value / scale[:, None]), -127, 127).astype(np.int8)
            stored[name + SCALE] = scale.astype(np.float32)
        else:
            stored[name] = np.ascontiguousarray(value)
    return stored


def unpack(stored: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The float32 tensors that ``pack`` stored."""
    return {name: value.astype(np.float32) * stored[name + SCALE][:, None] if name + SCALE in stored else value
            for name, value in stored.items() if not name.endswith(SCALE)}
