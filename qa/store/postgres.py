"""The index in PostgreSQL + pgvector: one index shared by any number of chat servers.

Selected by an index location that is a ``postgresql://`` URL (``--index`` / ``QA_INDEX``).
Everything lives in the schema ``citeqa``::

    schema          one row: the schema version and the vector dimension of its tables
    builds          one row per build: state ('building' or 'done') and its manifest (jsonb)
    current_build   one row: the build that readers use
    documents       per build: title, references (jsonb) and the rows of its passages
    passages        per build (partitioned by build): the passage, the sha256 of its embedded
                    text, its embedding (vector, HNSW index above Settings.ann_threshold)
    sentences       per build (partitioned): each sentence's text sha256 and embedding
    postings        per build (partitioned): a BM25 inverted index, one row per term with the
                    rows holding it and their BM25 weights (bm25s's own weights, k1=1.2 b=0.75),
                    so that a query's BM25 scores are a sum over its terms' postings

A build takes a PostgreSQL advisory lock (a second build waits), writes its rows into tables of
its own, then attaches them as partitions and points ``current_build`` at it in one
transaction: readers see the old build or the new one, never a mix. A build killed half-way
leaves unattached tables that the next build drops. The previous build is kept until the next
one, so a reader still on it finishes its question. Readers connect read-only (a role with
SELECT only is enough), pin a build per thread, and move to the current build before each
question (``follow_current``). Every query is parameterised; table names are built with
``psycopg.sql.Identifier`` from build numbers. Passwords are never shown: ``location`` is the
URL without it.

pgvector's version is read at connect: an HNSW index needs 0.5 (a build is refused below it, with
the version in the message); an article filter on an HNSW index uses ``hnsw.iterative_scan``
from 0.8 and an exact scan of the articles' rows before it. A connection the server ended
between questions (restart, crash, an administrator) is replaced at the next question; one lost
during a question fails that question with a message saying so, and the next one reconnects.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from qa.config import Settings
from qa.ingest.passages import CITING, Passage
from qa.store.building import IndexStatus
from qa.store.contract import Articles, DocumentInfo, IndexUnusableError, Manifest, MissingIndexError, stale_reasons
from qa.store.postgres_connection import (
    LOCK,
    PASSAGE_COLUMNS,
    PGVECTOR_ITERATIVE_SCAN,
    check_schema,
    connect,
    current_build_id,
    pgvector_version,
    redacted,
    secret_free,
    table,
)


@dataclass(frozen=True)
class _Pin:
    """One thread's view of the index: its connection and the build it reads."""

    connection: psycopg.Connection
    build_id: int
    manifest: Manifest
    documents: dict[str, DocumentInfo]
    document_rows: dict[str, tuple[int, int]]
    exact_filter: bool  # an article filter scans the articles' rows (HNSW index, pgvector without iterative scans)


class DatabaseStore:
    """The PostgreSQL implementation of ``PassageStore``. Each thread has its own read-only
    connection and pinned build, so concurrent questions of a chat server never mix builds."""

    searches_in_parallel = False  # a second thread would have its own pin, perhaps on another build

    def __init__(self, url: str) -> None:
        self.url = url
        self.location = redacted(url)
        self._local = threading.local()
        self._pin()  # fail now, with a clear message, rather than at the first question

    @property
    def manifest(self) -> Manifest:
        return self._pin().manifest

    @property
    def documents(self) -> dict[str, DocumentInfo]:
        return self._pin().documents

    @property
    def build_id(self) -> int:
        """The build this thread reads."""
        return self._pin().build_id

    def follow_current(self) -> None:
        """Move this thread to the current build if a newer one was switched in (called before
        each question: a question reads one build from start to end). A connection the server
        ended since the last question is replaced by a new one, on the current build."""
        pin = self._pin()
        try:
            current = current_build_id(pin.connection, self.location)
        except psycopg.OperationalError:
            self._drop_pin()
            self._pin()  # a new connection, on the current build (or the message saying why not)
            return
        if current != pin.build_id:
            self._local.pin = self._load_pin(pin.connection)

    def _drop_pin(self) -> None:
        """Close this thread's connection; the next use opens a new one."""
        self._local.pin.connection.close()
        self._local.pin = None

    def _pin(self) -> _Pin:
        pin = getattr(self._local, "pin", None)
        if pin is None:
            connection = connect(self.url, read_only=True)
            try:
                pin = self._load_pin(connection)
            except BaseException:
                connection.close()
                raise
            self._local.pin = pin
        return pin

    def _load_pin(self, connection: psycopg.Connection) -> _Pin:
        try:
            check_schema(connection, self.location)
            register_vector(connection)
            build_id = current_build_id(connection, self.location)
            manifest = Manifest(**connection.execute(
                sql.SQL("SELECT manifest FROM {} WHERE id = %s").format(table("builds")), (build_id,)).fetchone()[0])
            rows = connection.execute(
                sql.SQL("SELECT doc_id, title, refs, first_row, end_row FROM {} WHERE build_id = %s ORDER BY first_row").format(table("documents")),
                (build_id,)).fetchall()
            hnsw = manifest.vector_index["type"] == "hnsw"
            iterative = pgvector_version(connection) >= PGVECTOR_ITERATIVE_SCAN
            if hnsw:
                connection.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(int(manifest.vector_index["ef_search"]))))
            if hnsw and iterative:
                connection.execute("SET hnsw.iterative_scan = relaxed_order")  # an article filter still finds `width` rows
        except psycopg.errors.InsufficientPrivilege as error:
            raise IndexUnusableError(f"the user of {self.location} may not read the citeqa tables ({error}): GRANT SELECT on them") from None
        documents = {doc_id: DocumentInfo(doc_id, title, {int(n): t for n, t in refs.items()}) for doc_id, title, refs, _, _ in rows}
        return _Pin(connection, build_id, manifest, documents, {doc_id: (first, end) for doc_id, _, _, first, end in rows},
                    exact_filter=hnsw and not iterative)

    def query(self, statement: str, parameters: tuple) -> list[tuple]:
        """Rows of a query on this thread's build (its first parameter is the build id)."""
        pin = self._pin()
        query = sql.SQL(statement).format(**{name: table(name) for name in ("passages", "sentences", "postings")})
        try:
            with pin.connection.cursor(binary=True) as cursor:  # binary: vectors arrive as float32 bytes, not text to parse
                return cursor.execute(query, (pin.build_id, *parameters)).fetchall()
        except psycopg.OperationalError as error:
            lost = pin.connection.broken
            self._drop_pin()
            detail = secret_free(str(error).strip().split("\n")[0] or repr(error), self.url)
            if lost:
                raise IndexUnusableError(
                    f"PostgreSQL at {self.location} ended the connection during the question ({detail}): the server crashed "
                    "or restarted, or an administrator ended the session; ask again: the next question reconnects") from None
            raise IndexUnusableError(f"PostgreSQL at {self.location} could not answer the question ({detail}); "
                                     "the next question reconnects") from None

    def dense_search(self, query: np.ndarray, width: int, articles: Articles = None) -> np.ndarray:
        if articles is None:
            rows = self.query("SELECT row FROM {passages} WHERE build_id = %s ORDER BY embedding <#> %s LIMIT %s", (query, width))
        elif self._pin().exact_filter:  # OFFSET 0 keeps the planner from taking the order from the HNSW index
            rows = self.query("SELECT row FROM (SELECT row, embedding FROM {passages} WHERE build_id = %s AND doc_id = ANY(%s) OFFSET 0) AS a"
                              " ORDER BY embedding <#> %s LIMIT %s", (sorted(articles), query, width))
        else:
            rows = self.query("SELECT row FROM {passages} WHERE build_id = %s AND doc_id = ANY(%s) ORDER BY embedding <#> %s LIMIT %s",
                               (sorted(articles), query, width))
        return np.array([r for r, in rows], dtype=np.int64)

    def lexical_search(self, query_terms: list[str], width: int, articles: Articles = None) -> tuple[np.ndarray, np.ndarray]:
        """BM25 in the database: the sum of the query terms' posting weights (a term asked twice
        counts twice, as in bm25s), best first."""
        counts = Counter(query_terms)
        terms, repeats = list(counts), list(counts.values())
        allowed = None if articles is None else self._rows_of(articles)
        rows = self.query(
            "SELECT p.row, sum(p.weight * q.repeats)::real AS score"
            " FROM (SELECT term, rows, weights FROM {postings} WHERE build_id = %s) t"
            " JOIN unnest(%s::text[], %s::int[]) AS q(term, repeats) USING (term), unnest(t.rows, t.weights) AS p(row, weight)"
            " WHERE %s::int[] IS NULL OR p.row = ANY(%s::int[])"
            " GROUP BY p.row ORDER BY score DESC, p.row LIMIT %s",
            (terms, repeats, allowed, allowed, width))
        return np.array([r for r, _ in rows], dtype=np.int64), np.array([s for _, s in rows], dtype=np.float32)

    def document_frequencies(self, query_terms: Iterable[str]) -> dict[str, int]:
        query_terms = list(query_terms)
        found = dict(self.query("SELECT term, cardinality(rows) FROM {postings} WHERE build_id = %s AND term = ANY(%s)", (list(set(query_terms)),)))
        return {t: found.get(t, 0) for t in query_terms}

    def passages_at(self, rows: np.ndarray) -> list[Passage]:
        found = {r[0]: _passage(r) for r in self.query(f"SELECT {PASSAGE_COLUMNS} FROM {{passages}} WHERE build_id = %s AND row = ANY(%s)",
                                                        ([int(r) for r in rows],))}
        return [found[int(row)] for row in rows]

    def passage_vectors(self, rows: np.ndarray) -> np.ndarray:
        found = {row: v.to_numpy() for row, v in self.query("SELECT row, embedding FROM {passages} WHERE build_id = %s AND row = ANY(%s)",
                                                               ([int(r) for r in rows],))}
        return np.vstack([found[int(row)] for row in rows]).astype(np.float32) if len(rows) else np.zeros((0, self.manifest.dimension), np.float32)

    def sentence_vectors(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        by_row: dict[int, list[np.ndarray]] = {}
        for row, vector in self.query("SELECT row, embedding FROM {sentences} WHERE build_id = %s AND row = ANY(%s) ORDER BY row, position",
                                       ([int(r) for r in rows],)):
            by_row.setdefault(row, []).append(vector.to_numpy())
        stacked = [v for row in rows for v in by_row.get(int(row), [])]
        offsets = np.concatenate([[0], np.cumsum([len(by_row.get(int(row), [])) for row in rows])]).astype(np.int64)
        return (np.vstack(stacked).astype(np.float32) if stacked else np.zeros((0, self.manifest.dimension), np.float32)), offsets

    def passage_with_id(self, passage_id: str) -> Passage | None:
        rows = self.query(f"SELECT {PASSAGE_COLUMNS} FROM {{passages}} WHERE build_id = %s AND id = %s", (passage_id,))
        return _passage(rows[0]) if rows else None

    def neighbours(self, passage: Passage, around: int = 1) -> list[Passage]:
        rows = self.query(
            f"SELECT {PASSAGE_COLUMNS} FROM {{passages}} WHERE build_id = %s AND doc_id = %s AND row BETWEEN"
            " (SELECT row FROM {passages} WHERE build_id = %s AND id = %s) - %s AND (SELECT row FROM {passages} WHERE build_id = %s AND id = %s) + %s"
            " ORDER BY row",
            (passage.doc_id, self.build_id, passage.id, around, self.build_id, passage.id, around))
        return [_passage(r) for r in rows]

    def citation_counts(self, doc_id: str) -> dict[int, int]:
        counts = dict.fromkeys(self.documents[doc_id].references, 0)
        for footnotes, in self.query("SELECT footnotes FROM {passages} WHERE build_id = %s AND doc_id = %s AND kind = ANY(%s)",
                                      (doc_id, list(CITING))):
            for number in footnotes:
                counts[number] = counts.get(number, 0) + 1
        return counts

    def _rows_of(self, articles: frozenset[str]) -> list[int]:
        spans = self._pin().document_rows
        return [row for d in sorted(articles) if d in spans for row in range(*spans[d])]


def _passage(row: tuple) -> Passage:
    _, pid, doc_id, title, section, kind, body, start, end, footnotes, sentences, file, sentence_footnotes = row
    return Passage(pid, doc_id, title, section, kind, body, start, end, tuple(footnotes),
                   tuple(zip(sentences[0::2], sentences[1::2])), file, tuple(tuple(notes) for notes in sentence_footnotes))


# --- status ------------------------------------------------------------------------------------


def database_status(settings: Settings) -> IndexStatus:
    """What `qa status` and the app show of a database index, without loading it."""
    url = str(settings.index)
    location = redacted(url)
    try:
        with connect(url, read_only=True) as connection:
            building = bool(connection.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) AND classid = %s AND objid = %s AND objsubid = 2)",
                LOCK).fetchone()[0])
            try:
                check_schema(connection, location)
                build_id = current_build_id(connection, location)
            except MissingIndexError as error:
                return IndexStatus(location, False, building, str(error))
            except IndexUnusableError as error:
                return IndexStatus(location, True, building, str(error))
            manifest = Manifest(**connection.execute(
                sql.SQL("SELECT manifest FROM {} WHERE id = %s").format(table("builds")), (build_id,)).fetchone()[0])
    except IndexUnusableError as error:
        return IndexStatus(location, False, False, str(error))
    except psycopg.Error as error:
        return IndexStatus(location, True, False, f"the index in {location} is unreadable ({secret_free(str(error), url)})")
    return IndexStatus(location, True, building, None, manifest, tuple(stale_reasons(manifest, settings)))


# --- building ----------------------------------------------------------------------------------


