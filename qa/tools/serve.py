"""The HTTP JSON API (``citeqa serve``): ask, feedback, status, documents, passages, and changes to
the corpus (upload, removal, rebuild) run as jobs, on FastAPI.

Each worker process loads one engine at startup (uvicorn's ``--workers N`` runs N processes).
The answers are the same objects as ``citeqa ask --json`` (``answer_json``), the status the same
as ``citeqa status --json``; ``/openapi.json`` and ``/docs`` (Swagger UI, from the package: it
works offline) describe every response. Errors are a JSON ``{"detail": "…"}`` with a 4xx status
(503 when the index cannot answer), never a trace.
Writing (upload, delete, rebuild, feedback) needs the token of ``--token-file``
(``qa.tools.access``), reading too with ``--private``; questions are rate-limited per client.
"""

from __future__ import annotations

import os
import threading
from contextlib import asynccontextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, File, Query, Request, Security, UploadFile
from fastapi import Path as PathParameter
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from swagger_ui_bundle import swagger_ui_path

from qa.answer.compose import passage_footnotes
from qa.answer.conversation import Turn
from qa.answer.question import QuestionError
from qa.answer.result import Answer
from qa.config import Settings
from qa.engine import Engine, index_status, open_engine, uses_database
from qa.ingest.passages import Passage
from qa.store.contract import IndexUnusableError
from qa.store.folder import current_build
from qa.store.model import load_encoder
from qa.tools.access import ApiToken, RateLimit
from qa.tools.corpus_jobs import JOB_ID, CorpusChangeError, CorpusJobs, Job, NewFile, UnknownDocumentError
from qa.tools.shapes import answer_json, footnotes_json, status_json
from qa.tools.feedback import record_vote

EXAMPLE_QUESTION = "Quelle est la longueur de la frontière ?"
# The API token, as `Authorization: Bearer TOKEN` (None when the header is missing or of another scheme).
Credentials = Annotated[HTTPAuthorizationCredentials | None,
                        Security(HTTPBearer(auto_error=False, description="the token in the file given to `citeqa serve --token-file`"))]


# --- what the API reads and answers ------------------------------------------------------------


class Error(BaseModel):
    detail: str = Field(examples=["the question is empty"])


class FootnoteOut(BaseModel):
    n: int = Field(examples=[1])
    reference: str | None = Field(description="the reference's text; null when the article has no such reference")


class SameFact(BaseModel):
    id: str
    document: str
    section: str
    sentence: str
    footnotes: list[FootnoteOut]


class MatchOut(BaseModel):
    """Why a passage was shown (with "explain": true); ranks are among the passages retrieved."""

    terms: list[str] = Field(description="the question's terms the passage holds, as it writes them")
    term_spans: list[list[int]] = Field(description="where they are in text: [start, end] each")
    dense: float = Field(description="dense score: mean cosine to the passage and its best sentence")
    dense_rank: int
    lexical: float = Field(description="BM25 divided by the question's best BM25")
    lexical_rank: int | None = Field(description="null when BM25 did not find it")
    reader: float | None = Field(description="the reader's best margin in the passage: its best span's score minus its "
                                             "\"not here\" score (above 0: it finds an answer there); null: not read")


class AnswerPassageOut(BaseModel):
    id: str = Field(examples=["relations-kazakhstan-russie-0001"])
    rank: int = Field(examples=[1])
    score: float = Field(examples=[0.9123])
    document: str = Field(examples=["Relations entre le Kazakhstan et la Russie"])
    section: str
    file: str | None = Field(description="the corpus file it was read from", examples=["relations-kazakhstan-russie.txt"])
    page: int | None = Field(description="its page, in a PDF (else null)", examples=[None])
    text: str
    answer_sentence: str | None = Field(description="the answering sentence, when it is in this passage")
    footnotes: list[FootnoteOut]
    same_fact_in: list[SameFact] = Field(description="passages of other articles saying the same sentence")
    why: MatchOut | None = Field(None, description="why it was shown (only with \"explain\": true)")


class AnswerOut(BaseModel):
    """An answer, as ``citeqa ask --json`` prints it."""

    question: str = Field(examples=[EXAMPLE_QUESTION])
    understood_as: str = Field(description="the question as answered: completed with words of the history, or the question itself")
    answered: bool
    answer_text: str | None = Field(description="the short answer (or, when asks_source, the references' text)", examples=["6 846 km"])
    answer_start: int | None = Field(description="where answer_text starts in the text of answer_passage")
    answer_end: int | None
    answer_passage: str | None = Field(description="the id of the first passage")
    confidence: float | None = Field(description="the probability that answer_sentence is right", examples=[0.93])
    asks_source: bool = Field(description="the question asks which source says a fact")
    answer_sentence: str | None
    answer_footnotes: list[FootnoteOut]
    message: str | None = Field(description="what to say instead of an answer", examples=[None])
    passages: list[AnswerPassageOut]


class EarlierTurn(BaseModel):
    """A turn of the conversation before the question."""

    model_config = ConfigDict(extra="forbid", strict=True)

    question: str = Field(max_length=10_000)
    answer: str | None = Field(None, max_length=10_000, description="the short answer it was given (its answer's answer_text), if any: "
                                                                   "a follow-up may carry its words")
    answer_passage: str | None = Field(None, description="the id of the passage that answered it (its answer's answer_passage), if any: "
                                                         "an id the index does not have is a 422")


class Ask(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={"examples": [{"question": EXAMPLE_QUESTION, "k": 3}]})

    question: str = Field(min_length=1, description="in French or English; not only spaces, and at most QA_MAX_QUESTION_CHARS "
                                                   "characters (1000 by default): else a 422 says why")
    k: int | None = Field(None, ge=1, le=20, description="passages to return (default 3)")
    articles: list[str] | None = Field(None, max_length=100, description="only these articles (title or file name)")
    history: list[EarlierTurn] | None = Field(None, max_length=50, description="the conversation's earlier turns, oldest first: "
                                              "a follow-up question is completed with their words (understood_as)")
    explain: bool = Field(False, description="say why each passage was shown (each passage's why)")


class Vote(Ask):
    model_config = ConfigDict(json_schema_extra={"examples": [{"question": EXAMPLE_QUESTION, "vote": "up"}]})  # and Ask's

    vote: Literal["up", "down"]


class VoteRecord(BaseModel):
    """The line written to the feedback file, as the chat's 👍/👎 write it."""

    question: str
    lang: str = Field(examples=["fr"])
    answered: bool
    answer_sentence: str | None
    passage_ids: list[str]
    vote: Literal["up", "down"]
    time: str = Field(examples=["2026-01-01T12:00:00+00:00"])


class StatusOut(BaseModel):
    """The index, as ``citeqa status --json`` prints it."""

    index: str = Field(description="its folder, or its database URL without password")
    exists: bool
    building: bool = Field(description="a build is running")
    problem: str | None = Field(description="why it cannot answer, if it cannot")
    model: str | None
    documents: int | None
    passages: int | None
    built_at: str | None
    stale: list[str] = Field(description="why it no longer matches the corpus", examples=[["new-article.md added"]])
    skipped: list[str] = Field(description="the corpus files its build could not read, and why", examples=[["corpus/notes.xlsx: unsupported file type '.xlsx'"]])


class DocumentOut(BaseModel):
    id: str = Field(examples=["relations-kazakhstan-russie"])
    title: str = Field(examples=["Relations entre le Kazakhstan et la Russie"])
    references: int = Field(description="how many references its notes list", examples=[41])


class ContextPassage(BaseModel):
    id: str
    section: str
    text: str


class PassageOut(BaseModel):
    id: str = Field(examples=["relations-kazakhstan-russie-0001"])
    document_id: str
    document: str
    section: str
    kind: str = Field(description='"text", "infobox", "reference" or "source"')
    text: str
    footnotes: list[FootnoteOut]
    context: list[ContextPassage] = Field(description="the passage among its neighbours in its document, in order")


class Health(BaseModel):
    status: Literal["ok"]


class FileStatusOut(BaseModel):
    name: str = Field(examples=["aral.md"])
    status: Literal["queued", "indexing", "indexed", "duplicate", "refused", "removing", "removed"]
    detail: str | None = Field(description="why it was refused, or which corpus file holds the same content",
                               examples=["the same content as relations-kazakhstan-russie.txt, in the corpus already"])
    document: str | None = Field(description="its document's id (for DELETE /documents/{id})", examples=["aral"])


class JobOut(BaseModel):
    """A change to the corpus, run in the background and followed by an incremental rebuild."""

    id: str = Field(examples=["0f5c2d9a4b3e4f6a8c1d2e3f4a5b6c7d"])
    kind: Literal["upload", "removal", "rebuild"]
    state: Literal["queued", "running", "done", "failed"] = Field(description="failed: the build failed and the corpus is as before")
    files: list[FileStatusOut]
    message: str | None = Field(description="why the build failed")
    warnings: list[str] = Field(description="corpus files the build skipped, one message each")
    embedded: int = Field(description="texts embedded so far by the build, of to_embed")
    to_embed: int
    created_at: str
    finished_at: str | None


# --- one engine per process ---------------------------------------------------------------------


class HttpError(Exception):
    """A request refused with this status, message and headers."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


class Service:
    """This worker's engine, reopened when ``citeqa build`` switched in a new build.

    Every request that uses the engine holds ``lock``: torch modules, the reader and the loaded
    store are not safe to share between threads (a question also already uses the threads torch
    and FAISS are given), so a worker answers one question at a time and more questions at once
    need more worker processes (``--workers``), each with its own engine."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.lock = threading.Lock()
        self.build = self.current_build()  # read first: a build switched in meanwhile costs one reopen, never a stale engine
        self.engine = open_engine(settings)
        self.jobs = CorpusJobs(settings, lambda: load_encoder(settings))  # the builds embed with a model of their own

    def current_build(self) -> Path | None:
        """The index folder's build in use (None for a database: its store follows rebuilds itself)."""
        return None if uses_database(self.settings) else current_build(self.settings.index)

    def fresh_engine(self) -> Engine:
        """The engine, on the index's current build (call with ``lock`` held): a folder's engine is
        reopened when its ``CURRENT`` names another build (builds switch it in one rename, so a
        half-written build is never opened), a database's store moves to the current build."""
        build = self.current_build()
        if build != self.build:
            self.engine = open_engine(self.settings, self.engine.embedder)
            self.build = build
        self.engine.store.follow_current()
        return self.engine

    def ask(self, request: Ask) -> Answer:
        """The answer to a request; an unknown article is a 404, a question that cannot be asked a 422."""
        with self.lock:
            engine = self.fresh_engine()
            try:
                articles = engine.articles_named(request.articles) if request.articles else None
            except ValueError as error:
                raise HttpError(404, str(error)) from None
            try:
                return engine.ask(request.question, request.k, articles, earlier_turns(engine, request.history or []), request.explain)
            except QuestionError as error:
                raise HttpError(422, str(error)) from None


def earlier_turns(engine: Engine, history: list[EarlierTurn]) -> list[Turn]:
    """A request's history as the engine's turns; an unknown answer_passage is a 422."""
    try:
        return [engine.turn(turn.question, turn.answer, turn.answer_passage) for turn in history]
    except ValueError as error:
        raise HttpError(422, str(error)) from None


# --- the application ----------------------------------------------------------------------------


def errors(*statuses: int) -> dict:
    return {status: {"model": Error} for status in statuses}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API on the index of ``settings`` (default: ``Settings.from_env()``, as each worker of
    ``citeqa serve`` reads it); the engine is loaded when the server starts. ValueError when the
    token file cannot be read, or ``api_private`` has no token file."""
    settings = settings or Settings.from_env()
    token = ApiToken.from_file(settings.api_token_file) if settings.api_token_file else None
    if settings.api_private and token is None:
        raise ValueError("a private API needs a token: give --token-file (or QA_API_TOKEN_FILE)")
    questions = RateLimit(settings.ask_rate_limit, settings.ask_rate_window)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.service = Service(settings)
        yield

    app = FastAPI(title="citeqa", version="1", lifespan=lifespan, docs_url=None,
                  description="Extractive answers with their sentence, passage and footnotes, from the corpus only.")
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes, upload_limit=settings.max_upload_bytes, token=token)
    if origins := [o.strip() for o in settings.api_cors_origins.split(",") if o.strip()]:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type"])
    app.mount("/docs/assets", StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.exception_handler(HttpError)
    async def refused(request: Request, error: HttpError) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, status_code=error.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_message(error)}, status_code=422)

    @app.exception_handler(IndexUnusableError)
    async def unusable(request: Request, error: IndexUnusableError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=503)

    @app.exception_handler(Exception)
    async def failed(request: Request, error: Exception) -> JSONResponse:  # a bug: uvicorn logs its trace
        return JSONResponse({"detail": f"internal error ({type(error).__name__}); the server's log has the details"}, status_code=500)

    def service(request: Request) -> Service:
        return request.app.state.service

    def token_holder(credentials: Credentials) -> None:
        """Only whoever sends the token (401 otherwise)."""
        if token is None:
            raise HttpError(403, "this server takes no changes: start it with `citeqa serve --token-file FILE`")
        if credentials is None:
            raise HttpError(401, "this needs the API token: send the header `Authorization: Bearer TOKEN`", {"WWW-Authenticate": "Bearer"})
        if not token.matches(credentials.credentials):
            raise HttpError(401, "wrong API token", {"WWW-Authenticate": 'Bearer error="invalid_token"'})

    def within_rate_limit(request: Request) -> None:
        """At most QA_ASK_RATE_LIMIT questions per client per QA_ASK_RATE_WINDOW seconds (429 otherwise)."""
        if wait := questions.wait_for(request.client.host if request.client else "unknown"):
            raise HttpError(429, f"too many questions: at most {settings.ask_rate_limit} per {settings.ask_rate_window} s "
                                 f"from one client; retry in {wait} s", {"Retry-After": str(wait)})

    writes = [Depends(token_holder)]
    reads = writes if settings.api_private else []  # with --private, reading needs the token too
    read_errors, write_errors = (401, 403) if settings.api_private else (), (401, 403)

    @app.post("/ask", response_model=AnswerOut, dependencies=[*reads, Depends(within_rate_limit)],
              responses=errors(400, 404, 413, 422, 429, 503, *read_errors))
    def ask(request: Request, body: Ask) -> dict:
        """Answer a question: the same object as ``citeqa ask --json``."""
        return answer_json(service(request).ask(body))

    @app.post("/feedback", response_model=VoteRecord, dependencies=[*writes, Depends(within_rate_limit)],
              responses=errors(400, 404, 413, 422, 429, 503, *write_errors))
    def feedback(request: Request, body: Vote) -> dict:
        """Ask the question again and record a 👍/👎 vote on its answer, as the chat does
        (``feedback.jsonl``, or the file QA_FEEDBACK names)."""
        return record_vote(service(request).ask(body), body.vote)

    @app.post("/documents", status_code=202, response_model=JobOut, dependencies=writes, responses=errors(400, 409, 413, 422, *write_errors))
    def add_documents(request: Request, files: Annotated[list[UploadFile], File(description="one or more corpus files")]) -> JSONResponse:
        """Add files to the corpus: a job, to follow at ``GET /jobs/{id}``, checks each (name,
        size, content already in the corpus, readable by the corpus's reader), moves those
        accepted into the corpus folder and rebuilds the index incrementally in the background."""
        added = [NewFile(f.filename or "", f.file.read(settings.max_document_bytes + 1)) for f in files]
        return job_answer(changing(lambda: service(request).jobs.add(added)))

    @app.delete("/documents/{document_id}", status_code=202, response_model=JobOut, dependencies=writes,
                responses=errors(404, 409, 422, *write_errors))
    def remove_document(request: Request, document_id: str) -> JSONResponse:
        """Remove a document (its file and its sources' texts) from the corpus and rebuild: a job."""
        return job_answer(changing(lambda: service(request).jobs.remove(document_id)))

    @app.post("/rebuild", status_code=202, response_model=JobOut, dependencies=writes, responses=errors(*write_errors))
    def rebuild(request: Request) -> JSONResponse:
        """Rebuild the index from the corpus folder (incrementally): a job."""
        return job_answer(service(request).jobs.rebuild())

    @app.get("/jobs/{job_id}", response_model=JobOut, dependencies=reads, responses=errors(404, 422, *read_errors))
    def job(request: Request, job_id: Annotated[str, PathParameter(pattern=JOB_ID.pattern, description="as POST /documents answered it")]) -> dict:
        """A job's state and each of its files' status (``queued``, ``indexing``, ``indexed``,
        ``duplicate``, ``refused`` with the reason; ``removing``, ``removed``)."""
        found = service(request).jobs.get(job_id)
        if found is None:
            raise HttpError(404, f"no job with id {job_id!r}")
        return asdict(found)

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        """Swagger UI, its script and style served from the package (swagger-ui-bundle-v2)."""
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(openapi_url=f"{root}{app.openapi_url}", title="citeqa API",
                                   swagger_js_url=f"{root}/docs/assets/swagger-ui-bundle.js",
                                   swagger_css_url=f"{root}/docs/assets/swagger-ui.css",
                                   swagger_favicon_url=f"{root}/docs/assets/favicon-32x32.png")

    @app.get("/status", response_model=StatusOut, dependencies=reads, responses=errors(*read_errors))
    def status() -> dict:
        """The index: documents, passages, model, when built, stale or not (``citeqa status --json``)."""
        return status_json(index_status(settings))

    @app.get("/documents", response_model=list[DocumentOut], dependencies=reads, responses=errors(503, *read_errors))
    def documents(request: Request) -> list[dict]:
        """The indexed articles."""
        with service(request).lock:
            store = service(request).fresh_engine().store
            return [{"id": d.doc_id, "title": d.title, "references": len(d.references)} for d in store.documents.values()]

    @app.get("/passages/{passage_id:path}", response_model=PassageOut, dependencies=reads, responses=errors(404, 422, 503, *read_errors))
    def passage(request: Request, passage_id: str, around: Annotated[int, Query(ge=0, le=5)] = 1) -> dict:
        """A passage with its footnotes' references, among ``around`` passages before and after it."""
        with service(request).lock:
            store = service(request).fresh_engine().store
            found = store.passage_with_id(passage_id)
            if found is None:
                raise HttpError(404, f"no passage with id {passage_id!r}")
            return passage_json(found, store.neighbours(found, around), footnotes_json(passage_footnotes(store, found)))

    @app.get("/health", response_model=Health)
    def health() -> dict:
        """Whether the server is up (its engine is loaded before it answers anything)."""
        return {"status": "ok"}

    return app


def changing(change) -> Job:
    """The job ``change()`` submits; a change the corpus cannot take is a 404 (no such
    document) or a 409 (the corpus is the bundled article)."""
    try:
        return change()
    except UnknownDocumentError as error:
        raise HttpError(404, str(error)) from None
    except CorpusChangeError as error:
        raise HttpError(409, str(error)) from None


def job_answer(job: Job) -> JSONResponse:
    """202 with the job, and where to follow it."""
    return JSONResponse(asdict(job), status_code=202, headers={"Location": f"/jobs/{job.id}"})


def passage_json(passage: Passage, context: list[Passage], footnotes: list[dict]) -> dict:
    return {
        "id": passage.id, "document_id": passage.doc_id, "document": passage.title, "section": passage.section,
        "kind": passage.kind, "text": passage.text, "footnotes": footnotes,
        "context": [{"id": p.id, "section": p.section, "text": p.text} for p in context],
    }


def validation_message(error: RequestValidationError) -> str:
    """FastAPI's validation errors as one line: where, and what is wrong."""
    return "; ".join(
        f"body is not valid JSON: {e['ctx']['error']} (character {e['loc'][1]})" if e["type"] == "json_invalid"
        else f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}"
        for e in error.errors()
    )


class BodyLimit:
    """Refuse (413) a request body above ``limit`` bytes (``upload_limit`` for an upload that
    carries the token), by its Content-Length or as it arrives, before the application reads any
    of it; the body read is handed on as one message."""

    def __init__(self, app, limit: int, upload_limit: int, token: ApiToken | None) -> None:
        self.app, self.default_limit, self.upload_limit, self.token = app, limit, upload_limit, token

    def limit_for(self, scope) -> int:
        if (scope["method"], scope["path"]) == ("POST", "/documents") and self.token is not None:
            scheme, _, presented = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and self.token.matches(presented.strip()):
                return self.upload_limit
        return self.default_limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > limit:
            return await self.too_large(limit, scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                return await self.too_large(limit, scope, receive, send)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def too_large(self, limit: int, scope, receive, send) -> None:
        await JSONResponse({"detail": f"the request body is over {limit} bytes"}, status_code=413)(scope, receive, send)


def serve(settings: Settings, host: str, port: int, workers: int) -> None:
    """Run the API with uvicorn, ``workers`` processes each with its own engine; an index that
    cannot answer is refused before any starts."""
    import uvicorn

    if problem := index_status(settings).problem:
        raise IndexUnusableError(problem)
    create_app(settings)  # a bad token file, or --private without one, is refused before any worker starts
    token_file = str(settings.api_token_file.resolve()) if settings.api_token_file else ""
    os.environ.update({**settings.environment(), "QA_API_TOKEN_FILE": token_file,  # read by each worker
                       "QA_API_PRIVATE": "1" if settings.api_private else "0"})
    uvicorn.run("qa.tools.serve:create_app", factory=True, host=host, port=port, workers=workers, log_level="info")
