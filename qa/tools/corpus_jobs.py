"""Changes to the corpus asked for from the API or the chat: adding files, removing a document,
rebuilding the index. Each is a job, run in the background and followed by an incremental build.

Jobs run one at a time, across processes too (a lock file in the jobs folder), and each file of
an upload gets a status: ``queued``, ``indexing``, ``indexed``, ``duplicate`` (its content is in
the corpus already, by sha256) or ``refused`` with the reason; a removal's file goes ``removing``
then ``removed``. A file is read by the corpus's own reader before it enters the corpus folder, so
a file the reader refuses never gets there. The build is ``qa.engine.build`` with its own lock:
the index in use answers during it, and after a failed one, whose files are taken back out of
(or put back into) the corpus folder, so that the corpus and the index stay the same.
A job's state is a JSON file in ``Settings.jobs``: any process (every worker of ``citeqa serve``,
the chat) can report it.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import shutil
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from glob import escape as glob_escape
from pathlib import Path
from typing import Callable

from qa.config import Settings
from qa.engine import build
from qa.ingest.corpus import file_hashes, sources_folder
from qa.ingest.converted import ReadLimits
from qa.ingest.documents import CorpusFileError
from qa.ingest.readers import READERS, read_document, readable
from qa.locations import BUNDLED_CORPUS
from qa.store.locking import exclusive

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
MAX_NAME_CHARS = 200
KEPT_SECONDS = 7 * 24 * 3600  # a job's state is forgotten a week after it was last written


class CorpusChangeError(ValueError):
    """A change the corpus cannot take: its folder is the article bundled with citeqa."""


class UnknownDocumentError(CorpusChangeError):
    """No document with that id in the corpus folder."""


@dataclass
class FileStatus:
    """One file of a job, and what became of it."""

    name: str
    status: str  # "queued", "indexing", "indexed", "duplicate", "refused", "removing", "removed"
    detail: str | None = None  # why it was refused, or which file holds the same content
    document: str | None = None  # its document's id in the corpus (DELETE /documents/{id})


@dataclass
class Job:
    """A change to the corpus and its progress, as GET /jobs/{id} answers it."""

    id: str
    kind: str  # "upload", "removal" or "rebuild"
    files: list[FileStatus]
    state: str = "queued"  # "queued", "running", "done" or "failed" (the build failed: nothing changed)
    message: str | None = None  # why the build failed
    warnings: list[str] = field(default_factory=list)  # corpus files the build skipped, one message each
    embedded: int = 0  # texts the build has embedded so far, of
    to_embed: int = 0
    created_at: str = field(default_factory=lambda: _now())
    finished_at: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    @classmethod
    def from_json(cls, data: dict) -> "Job":
        return cls(**{**data, "files": [FileStatus(**f) for f in data["files"]]})


@dataclass(frozen=True)
class NewFile:
    """A file to add: its name as sent, and its bytes."""

    name: str
    content: bytes


def name_problem(name: str) -> str | None:
    """Why a file name cannot be a corpus file's (a path, a hidden or odd name, another type), or None."""
    if not name or name != name.strip() or len(name) > MAX_NAME_CHARS:
        return f"the name must be 1 to {MAX_NAME_CHARS} characters, without spaces around it"
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        return "the name must be a plain file name: no folder, no '..', not hidden"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "the name holds control characters"
    if not readable(Path(name)):
        return f"the corpus reads {', '.join(READERS)} files only"
    return None


class CorpusJobs:
    """The corpus changes of one process: submitted here, run in its background thread one at a
    time (across processes: a lock file), their state in the jobs folder. ``load_embedder`` gives
    the model the builds embed with; it is called once, by the first job."""

    def __init__(self, settings: Settings, load_embedder: Callable[[], object]) -> None:
        self.settings, self.folder = settings, settings.jobs
        self.load_embedder, self.embedder = load_embedder, None
        self.waiting: queue.Queue[Job] = queue.Queue()
        self.thread: threading.Thread | None = None
        self.start_lock = threading.Lock()

    # --- submitting ------------------------------------------------------------------------

    def add(self, files: list[NewFile]) -> Job:
        """A job adding ``files`` to the corpus; a file with a bad name or too large is refused
        at once, the others are queued (their bytes kept in the job's folder until it runs)."""
        self._check_writable()
        job = Job(uuid.uuid4().hex, "upload", [])
        staging = self.folder / job.id
        for new in files:
            problem = name_problem(new.name)
            if problem is None and len(new.content) > self.settings.max_document_bytes:
                problem = f"the file is over {self.settings.max_document_bytes} bytes (QA_MAX_DOCUMENT_BYTES)"
            if problem is None and any(f.name == new.name and f.status == "queued" for f in job.files):
                problem = "the same name twice in one upload"
            job.files.append(FileStatus(new.name, "refused" if problem else "queued", problem))
            if problem is None:
                staging.mkdir(parents=True, exist_ok=True)
                (staging / new.name).write_bytes(new.content)
        return self._submit(job)

    def remove(self, document_id: str) -> Job:
        """A job removing a document (its file and the full texts of its sources) from the corpus."""
        self._check_writable()
        files = self._article_files(document_id)
        if not files:
            raise UnknownDocumentError(f"no document with id {document_id!r} in the corpus folder")
        return self._submit(Job(uuid.uuid4().hex, "removal", [FileStatus(p.name, "queued", document=document_id) for p in files]))

    def rebuild(self) -> Job:
        """A job rebuilding the index from the corpus folder as it is."""
        return self._submit(Job(uuid.uuid4().hex, "rebuild", []))

    def get(self, job_id: str) -> Job | None:
        """The job with this id, as last saved by whichever process runs it; None if unknown."""
        if not JOB_ID.match(job_id):
            return None
        try:
            return Job.from_json(json.loads((self.folder / f"{job_id}.json").read_text("utf-8")))
        except FileNotFoundError:
            return None

    def _check_writable(self) -> None:
        if self.settings.corpus.resolve() == BUNDLED_CORPUS.resolve():
            raise CorpusChangeError("the corpus is the article bundled with citeqa: give a corpus folder of your own "
                                    "(--corpus or QA_CORPUS) to add or remove documents")

    def _article_files(self, document_id: str) -> list[Path]:
        """The article files of the corpus folder whose document id (file stem) is ``document_id``."""
        if name_problem(document_id + ".txt") is not None:
            return []
        return [path for path in self.settings.corpus.glob(f"{glob_escape(document_id)}.*") if path.is_file() and readable(path)]

    def _submit(self, job: Job) -> Job:
        self._forget_old_jobs()
        self._save(job)
        if any(f.status == "queued" for f in job.files) or job.kind == "rebuild":
            self.waiting.put(Job.from_json(asdict(job)))  # a copy: the one returned is answered as submitted
            self._start()
        else:  # nothing left to do: every file was refused
            job.state, job.finished_at = "done", _now()
            self._save(job)
        return job

    def _start(self) -> None:
        with self.start_lock:
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._work, name="citeqa-corpus-jobs", daemon=True)
                self.thread.start()

    def _forget_old_jobs(self) -> None:
        for path in self.folder.glob("*.json"):
            try:
                if path.stat().st_mtime < time.time() - KEPT_SECONDS:
                    path.unlink()
            except FileNotFoundError:  # forgotten by another process meanwhile
                pass

    def _save(self, job: Job) -> None:
        """Write the job's state in one rename, so that a reader never sees half of it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f".{job.id}.json.{os.getpid()}"
        partial.write_text(json.dumps(asdict(job), ensure_ascii=False), "utf-8")
        os.replace(partial, self.folder / f"{job.id}.json")

    # --- running ---------------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            job = self.waiting.get()
            try:
                with exclusive(self.folder / "corpus.lock"):
                    self._run(job)
            except Exception as error:  # a bug or a full disk: the job says so, the next one runs
                job.state, job.message, job.finished_at = "failed", f"{type(error).__name__}: {error}", _now()
                self._save(job)
            finally:
                shutil.rmtree(self.folder / job.id, ignore_errors=True)

    def _run(self, job: Job) -> None:
        job.state = "running"
        self._save(job)
        changed = self._place(job) if job.kind == "upload" else self._take_out(job) if job.kind == "removal" else []
        if not changed and job.kind != "rebuild":
            job.state, job.finished_at = "done", _now()
            return self._save(job)
        try:
            report = build(self.settings, self._embedder(), progress=lambda done, total: self._progress(job, done, total))
        except Exception as error:
            self._undo(job, changed)
            job.state, job.message = "failed", str(error)
        else:
            job.state, job.warnings = "done", list(report.skipped)
            for status in changed:
                status.status = "indexed" if status.status == "indexing" else "removed"
            shutil.rmtree(self.folder / job.id / "removed", ignore_errors=True)
        job.finished_at = _now()
        self._save(job)

    def _embedder(self):
        if self.embedder is None:
            self.embedder = self.load_embedder()
        return self.embedder

    def _progress(self, job: Job, done: int, total: int) -> None:
        job.embedded, job.to_embed = done, total
        self._save(job)

    def _place(self, job: Job) -> list[FileStatus]:
        """Move each queued file of an upload into the corpus folder, unless its content is there
        already, its name is taken, or the corpus's reader refuses it; the files placed."""
        corpus, staging = self.settings.corpus, self.folder / job.id
        known = {sha: path for path, sha in file_hashes(corpus).items()}
        placed = []
        for status in (f for f in job.files if f.status == "queued"):
            staged = staging / status.name
            sha = hashlib.sha256(staged.read_bytes()).hexdigest()
            document_id = Path(status.name).stem
            if sha in known:
                status.status, status.detail = "duplicate", f"the same content as {known[sha]}, in the corpus already"
                status.document = Path(known[sha]).stem if "/" not in known[sha] else None
                continue
            if self._article_files(document_id):
                status.status = "refused"
                status.detail = f"a document with id {document_id!r} is in the corpus already: remove it first"
                continue
            try:
                read_document(staged, ReadLimits.of(self.settings))
            except CorpusFileError as error:
                status.status, status.detail = "refused", str(error).replace(str(staged), status.name)
                continue
            partial = corpus / f".{status.name}.{job.id}.partial"
            shutil.copyfile(staged, partial)
            os.replace(partial, corpus / status.name)
            status.status, status.document = "indexing", document_id
            known[sha] = status.name
            placed.append(status)
            self._save(job)
        self._save(job)
        return placed

    def _take_out(self, job: Job) -> list[FileStatus]:
        """Move a removal's files (and the article's sources folder) out of the corpus folder, into the job's."""
        corpus, kept = self.settings.corpus, self.folder / job.id / "removed"
        kept.mkdir(parents=True, exist_ok=True)
        taken = []
        for status in job.files:
            path = corpus / status.name
            if not path.is_file():
                status.status, status.detail = "refused", "no longer in the corpus folder"
                continue
            shutil.move(path, kept / status.name)
            sources = sources_folder(path)
            if sources.is_dir():
                shutil.move(sources, kept / sources.name)
            status.status = "removing"
            taken.append(status)
        self._save(job)
        return taken

    def _undo(self, job: Job, changed: list[FileStatus]) -> None:
        """After a failed build: the files placed go out of the corpus, those taken out go back."""
        corpus, kept = self.settings.corpus, self.folder / job.id / "removed"
        for status in changed:
            if status.status == "indexing":
                (corpus / status.name).unlink(missing_ok=True)
                status.detail = "not added: the index could not be rebuilt; the index in use is unchanged"
            else:
                for path in sorted(kept.glob(Path(status.name).stem + "*")):
                    shutil.move(path, corpus / path.name)
                status.detail = "not removed: the index could not be rebuilt; the index in use is unchanged"
            status.status = "refused"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
