"""Who may use ``citeqa serve`` and how much: the API token, and the per-client limit on questions.

The token is read once from its file and kept only as its sha256; a presented token is hashed and
compared in constant time (``hmac.compare_digest``), so neither the token nor how much of it
matched can be read from memory or from response times.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

MIN_TOKEN_CHARS = 16


@dataclass(frozen=True)
class ApiToken:
    """The sha256 of the token that writing (and, when private, reading) needs."""

    digest: bytes

    @classmethod
    def from_file(cls, path: Path) -> "ApiToken":
        """The token written in ``path`` (surrounding white space ignored); ValueError naming the
        file when it cannot be read or holds a token shorter than MIN_TOKEN_CHARS characters."""
        try:
            token = path.read_text("utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"cannot read the API token file {path}: {error}") from None
        if len(token) < MIN_TOKEN_CHARS or any(c.isspace() for c in token):
            raise ValueError(f"the API token file {path} must hold one token of at least {MIN_TOKEN_CHARS} characters, "
                             "without spaces (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))' > FILE`)")
        return cls(_sha256(token))

    def matches(self, presented: str) -> bool:
        """Whether ``presented`` is the token, compared in constant time."""
        return hmac.compare_digest(_sha256(presented), self.digest)


def _sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class RateLimit:
    """At most ``limit`` requests per client in any ``window`` seconds (a sliding window); safe to
    share between threads. ``limit`` 0 lets everything through."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.lock = threading.Lock()
        self.recent: dict[str, deque[float]] = {}  # each client's requests within the window, oldest first

    def wait_for(self, client: str, now: float | None = None) -> int:
        """0 when ``client`` may send a request now (it is counted), else the seconds to wait
        before it may (for a ``Retry-After`` header)."""
        if self.limit <= 0:
            return 0
        now = time.monotonic() if now is None else now
        with self.lock:
            times = self.recent.setdefault(client, deque())
            while times and times[0] <= now - self.window:
                times.popleft()
            if len(times) >= self.limit:
                return max(1, math.ceil(times[0] + self.window - now))
            times.append(now)
            if len(self.recent) > 10_000:  # forget the clients idle for a whole window
                self.recent = {c: t for c, t in self.recent.items() if t and t[-1] > now - self.window}
            return 0
