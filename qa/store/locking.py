"""One process at a time: an exclusive lock file (flock) held while a block runs, waited for
when another process holds it. Builds, the model's conversion and the ONNX exports use it."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive(lock_file: Path) -> Iterator[None]:
    """Hold ``lock_file``'s exclusive lock (made, with its folder, if missing) while the block runs."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
