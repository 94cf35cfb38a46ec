"""The HTTP JSON API (``citeqa serve``): ask, feedback, status, documents and passages, on FastAPI.

Each worker process loads one engine at startup (uvicorn's ``--workers N`` runs N processes).
The answers are the same objects as ``citeqa ask --json`` (``answer_json``), the status the same
as ``citeqa status --json``; ``/openapi.json`` and ``/docs`` describe every response. Errors are
a JSON ``{"detail": "…"}`` with a 4xx status (503 when the index cannot answer), never a trace.
"""

from __future__ import annotations

import os
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from qa.answer.compose import passage_footnotes
from qa.answer.conversation import Turn
from qa.answer.question import QuestionError
from qa.answer.result import Answer
from qa.config import Settings
from qa.engine import Engine, index_status, open_engine, uses_database
from qa.ingest.passages import Passage
from qa.store.contract import IndexUnusableError
from qa.store.folder import current_build
from qa.tools.shapes import answer_json, footnotes_json, status_json
from qa.tools.feedback import record_vote

EXAMPLE_QUESTION = "Quelle est la longueur de la frontière ?"


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
    reader: float | None = Field(description="the reader's best margin in the passage (best span minus 'not here'); null: not read")


class AnswerPassageOut(BaseModel):
    id: str = Field(examples=["relations-kazakhstan-russie-0001"])
    rank: int = Field(examples=[1])
    score: float = Field(examples=[0.9123])
    document: str = Field(examples=["Relations entre le Kazakhstan et la Russie"])
    section: str
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
    answer_passage: str | None = Field(None, description="the id of the passage that answered it (its answer's answer_passage), if any")


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


# --- one engine per process ---------------------------------------------------------------------


class HttpError(Exception):
    """A request refused with this status and message."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


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
        return [engine.turn(turn.question, turn.answer_passage) for turn in history]
    except ValueError as error:
        raise HttpError(422, str(error)) from None


# --- the application ----------------------------------------------------------------------------


def errors(*statuses: int) -> dict:
    return {status: {"model": Error} for status in statuses}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API on the index of ``settings`` (default: ``Settings.from_env()``, as each worker of
    ``citeqa serve`` reads it); the engine is loaded when the server starts."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.service = Service(settings)
        yield

    app = FastAPI(title="citeqa", version="1", lifespan=lifespan,
                  description="Extractive answers with their sentence, passage and footnotes, from the corpus only.")
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)

    @app.exception_handler(HttpError)
    async def refused(request: Request, error: HttpError) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, status_code=error.status)

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

    @app.post("/ask", response_model=AnswerOut, responses=errors(400, 404, 413, 422, 503))
    def ask(request: Request, body: Ask) -> dict:
        """Answer a question: the same object as ``citeqa ask --json``."""
        return answer_json(service(request).ask(body))

    @app.post("/feedback", response_model=VoteRecord, responses=errors(400, 404, 413, 422, 503))
    def feedback(request: Request, body: Vote) -> dict:
        """Ask the question again and record a 👍/👎 vote on its answer, as the chat does
        (``feedback.jsonl``, or the file QA_FEEDBACK names)."""
        return record_vote(service(request).ask(body), body.vote)

    @app.get("/status", response_model=StatusOut)
    def status() -> dict:
        """The index: documents, passages, model, when built, stale or not (``citeqa status --json``)."""
        return status_json(index_status(settings))

    @app.get("/documents", response_model=list[DocumentOut], responses=errors(503))
    def documents(request: Request) -> list[dict]:
        """The indexed articles."""
        with service(request).lock:
            store = service(request).fresh_engine().store
            return [{"id": d.doc_id, "title": d.title, "references": len(d.references)} for d in store.documents.values()]

    @app.get("/passages/{passage_id:path}", response_model=PassageOut, responses=errors(404, 422, 503))
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
    """Refuse (413) a request body above ``limit`` bytes, by its Content-Length or as it arrives,
    before the application reads any of it; the body read is handed on as one message."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            return await self.too_large(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                return await self.too_large(scope, receive, send)
            more = message.get("more_body", False)
        body, replayed = b"".join(chunks), False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def too_large(self, scope, receive, send) -> None:
        await JSONResponse({"detail": f"the request body is over {self.limit} bytes"}, status_code=413)(scope, receive, send)


def serve(settings: Settings, host: str, port: int, workers: int) -> None:
    """Run the API with uvicorn, ``workers`` processes each with its own engine; an index that
    cannot answer is refused before any starts."""
    import uvicorn

    if problem := index_status(settings).problem:
        raise IndexUnusableError(problem)
    os.environ.update(settings.environment())  # read by each worker
    uvicorn.run("qa.tools.serve:create_app", factory=True, host=host, port=port, workers=workers, log_level="info")
