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

import re
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from typing import Iterable, Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb

from qa.config import Settings
from qa.ingest.corpus import Corpus
from qa.store.folder import BuildReport, IndexStatus, document_rows, embedded_texts, lexical_text, new_manifest
from qa.store.lexical import LexicalIndex
from qa.ingest.passages import CITING, Passage
from qa.store.contract import (
    Articles,
    DocumentInfo,
    IncompatibleIndexError,
    IndexUnusableError,
    Manifest,
    MissingIndexError,
    Progress,
    corpus_passages,
    embed_batches,
    stale_reasons,
    vector_index_description,
)

SCHEMA = "citeqa"
SCHEMA_VERSION = 2  # 2: passages.sentence_footnotes
LOCK = (0x63697465, 1)  # pg_advisory_lock(key1, key2): "cite", builds
PARTITIONED = ("passages", "sentences", "postings")
PASSAGE_COLUMNS = "row, id, doc_id, title, section, kind, body, start_offset, end_offset, footnotes, sentences, file, sentence_footnotes"
PGVECTOR_MAX_EF_SEARCH = 1000  # pgvector refuses a larger hnsw.ef_search
PGVECTOR_HNSW = (0, 5, 0)  # the first pgvector with HNSW indexes
PGVECTOR_ITERATIVE_SCAN = (0, 8, 0)  # the first with hnsw.iterative_scan (a filtered search still finds `width` rows)


def redacted(url: str) -> str:
    """The URL without its password (in the authority or a ``password=`` parameter)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, host = netloc.rsplit("@", 1)
        netloc = f"{credentials.split(':', 1)[0]}{':***' if ':' in credentials else ''}@{host}"
    query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _secret_free(message: str, url: str) -> str:
    """A server or libpq message with the URL's password blanked out, should it appear."""
    password = urlsplit(url).password or dict(parse_qsl(urlsplit(url).query)).get("password")
    return message.replace(password, "***") if password else message


def connect(url: str, read_only: bool) -> psycopg.Connection:
    """An autocommit connection (read-only if asked), or an IndexUnusableError saying why not."""
    location = redacted(url)
    try:
        connection = psycopg.connect(url, autocommit=True, connect_timeout=10, application_name="citeqa")
    except psycopg.OperationalError as error:
        detail = _secret_free(str(error).strip().splitlines()[-1] if str(error).strip() else repr(error), url)
        if "authentication failed" in detail or "no password supplied" in detail:
            raise IndexUnusableError(
                f"PostgreSQL at {location} refused the credentials: check the user and password "
                f"(in the URL, PGPASSWORD or ~/.pgpass) ({detail})") from None
        if "does not exist" in detail:
            raise IndexUnusableError(f"PostgreSQL at {location} answered: {detail}; fix the URL or create it") from None
        raise IndexUnusableError(f"cannot reach PostgreSQL at {location}: {detail}") from None
    if read_only:
        connection.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    return connection


def pgvector_version(connection: psycopg.Connection) -> tuple[int, ...]:
    """The version of the vector extension in this database, e.g. (0, 8, 6); () if it has none."""
    row = connection.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
    return tuple(int(part) for part in re.findall(r"\d+", row[0])[:3]) if row else ()


def require_pgvector(connection: psycopg.Connection, needed: tuple[int, ...], what: str, location: str) -> None:
    """Refuse what needs a newer pgvector than the database's, naming the version needed."""
    version = pgvector_version(connection)
    if version < needed:
        dotted = ".".join(map(str, version)) or "none"
        raise IndexUnusableError(
            f"{what} needs pgvector {'.'.join(map(str, needed))} or newer, and the database {location} has {dotted}: "
            "upgrade pgvector on the server, then run `ALTER EXTENSION vector UPDATE;` in the database")


def table(name: str, build_id: int | None = None) -> sql.Composed:
    return sql.Identifier(SCHEMA, name if build_id is None else f"{name}_{build_id}")


def _schema_state(connection: psycopg.Connection) -> tuple[int, int] | None:
    """The schema version and dimension of the citeqa tables (None: there are none)."""
    if connection.execute("SELECT to_regclass('citeqa.schema')").fetchone()[0] is None:
        return None
    row = connection.execute(sql.SQL("SELECT version, dimension FROM {}").format(table("schema"))).fetchone()
    return None if row is None else (row[0], row[1])


def check_schema(connection: psycopg.Connection, location: str) -> None:
    """Refuse a database without the citeqa tables, or with tables of another schema version."""
    state = _schema_state(connection)
    if state is None:
        raise MissingIndexError(f"no index in {location}: build it with `python -m qa --index URL build`")
    version, _ = state
    if version < SCHEMA_VERSION:
        raise IncompatibleIndexError(
            f"the index in {location} has the citeqa schema version {version}, this citeqa reads version {SCHEMA_VERSION}: "
            "run `python -m qa --index URL build` to migrate it (the tables are recreated and everything is embedded again)")
    if version > SCHEMA_VERSION:
        raise IncompatibleIndexError(
            f"the index in {location} has the citeqa schema version {version}, made by a newer citeqa: upgrade citeqa")


# --- reading ---------------------------------------------------------------------------------


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
            current = _current_build_id(pin.connection, self.location)
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
            build_id = _current_build_id(connection, self.location)
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
            detail = _secret_free(str(error).strip().split("\n")[0] or repr(error), self.url)
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


def _current_build_id(connection: psycopg.Connection, location: str) -> int:
    row = connection.execute(sql.SQL("SELECT build_id FROM {}").format(table("current_build"))).fetchone()
    if row is None:
        raise MissingIndexError(f"no index in {location}: no build has finished yet; build it with `python -m qa --index URL build`")
    return row[0]


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
                build_id = _current_build_id(connection, location)
            except MissingIndexError as error:
                return IndexStatus(location, False, building, str(error))
            except IndexUnusableError as error:
                return IndexStatus(location, True, building, str(error))
            manifest = Manifest(**connection.execute(
                sql.SQL("SELECT manifest FROM {} WHERE id = %s").format(table("builds")), (build_id,)).fetchone()[0])
    except IndexUnusableError as error:
        return IndexStatus(location, False, False, str(error))
    except psycopg.Error as error:
        return IndexStatus(location, True, False, f"the index in {location} is unreadable ({_secret_free(str(error), url)})")
    return IndexStatus(location, True, building, None, manifest, tuple(stale_reasons(manifest, settings)))


# --- building ----------------------------------------------------------------------------------


@contextmanager
def build_lock(connection: psycopg.Connection) -> Iterator[None]:
    """Hold the database's citeqa build lock (a second build waits for the first); PostgreSQL
    releases it by itself if the building process dies."""
    connection.execute("SELECT pg_advisory_lock(%s, %s)", LOCK)
    try:
        yield
    finally:
        if not connection.closed:
            connection.execute("SELECT pg_advisory_unlock(%s, %s)", LOCK)


def prepare_schema(connection: psycopg.Connection, location: str, dimension: int) -> None:
    """Create the citeqa tables, or recreate them when their schema version or vector dimension
    is not this one's (a migration: everything is embedded again). Needs the vector extension."""
    try:
        connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.errors.InsufficientPrivilege:
        raise IndexUnusableError(
            f"the database {location} lacks the pgvector extension and this user may not create it: "
            "have an administrator run `CREATE EXTENSION vector;` in it") from None
    except (psycopg.errors.FeatureNotSupported, psycopg.errors.UndefinedFile) as error:
        raise IndexUnusableError(
            f"the PostgreSQL server of {location} has no pgvector extension ({error}): install pgvector on the server "
            "(e.g. the package postgresql-<version>-pgvector), then run `CREATE EXTENSION vector;`") from None
    if _schema_state(connection) == (SCHEMA_VERSION, dimension):
        return
    d = sql.Literal(dimension)
    with connection.transaction():
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(SCHEMA)))
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        for statement in (
            "CREATE TABLE citeqa.schema (version int NOT NULL, dimension int NOT NULL)",
            "CREATE TABLE citeqa.builds (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, state text NOT NULL DEFAULT 'building'"
            " CHECK (state IN ('building', 'done')), started_at timestamptz NOT NULL DEFAULT now(), manifest jsonb)",
            "CREATE TABLE citeqa.current_build (one boolean PRIMARY KEY DEFAULT true CHECK (one), build_id bigint NOT NULL REFERENCES citeqa.builds)",
            "CREATE TABLE citeqa.documents (build_id bigint NOT NULL REFERENCES citeqa.builds ON DELETE CASCADE, doc_id text NOT NULL,"
            " title text NOT NULL, refs jsonb NOT NULL, first_row int NOT NULL, end_row int NOT NULL, PRIMARY KEY (build_id, doc_id))",
            "CREATE TABLE citeqa.passages (build_id bigint NOT NULL, row int NOT NULL, id text NOT NULL, doc_id text NOT NULL,"
            " title text NOT NULL, section text NOT NULL, kind text NOT NULL, body text NOT NULL, start_offset int NOT NULL,"
            " end_offset int NOT NULL, footnotes int[] NOT NULL, sentences int[] NOT NULL, file text NOT NULL, sentence_footnotes jsonb NOT NULL,"
            " text_hash bytea NOT NULL, embedding vector({d}) NOT NULL, PRIMARY KEY (build_id, row)) PARTITION BY LIST (build_id)",
            "CREATE TABLE citeqa.sentences (build_id bigint NOT NULL, row int NOT NULL, position int NOT NULL, text_hash bytea NOT NULL,"
            " embedding vector({d}) NOT NULL, PRIMARY KEY (build_id, row, position)) PARTITION BY LIST (build_id)",
            "CREATE TABLE citeqa.postings (build_id bigint NOT NULL, term text NOT NULL, rows int[] NOT NULL, weights real[] NOT NULL,"
            " PRIMARY KEY (build_id, term)) PARTITION BY LIST (build_id)",
        ):
            connection.execute(sql.SQL(statement).format(d=d))
        connection.execute("INSERT INTO citeqa.schema VALUES (%s, %s)", (SCHEMA_VERSION, dimension))


class DatabaseBuild:
    """A build being written: its rows go into tables of its own (not yet partitions, so no
    reader sees them), a batch at a time with COPY; ``finish`` indexes them and switches."""

    def __init__(self, connection: psycopg.Connection, dimension: int) -> None:
        self.connection = connection
        self.dimension = dimension
        self.build_id = connection.execute("INSERT INTO citeqa.builds DEFAULT VALUES RETURNING id").fetchone()[0]
        for name in PARTITIONED:
            connection.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(table(name, self.build_id), table(name)))
        self.passages: list[Passage] = []

    def add(self, passages: list[Passage], passage_vectors: np.ndarray, sentence_vectors: np.ndarray) -> None:
        """Write passages (continuing the rows) with their vectors, and their sentences' vectors in order."""
        first = len(self.passages)
        texts = embedded_texts(passages)
        keys = [bytes.fromhex(t.key) for t in texts]
        build = self.build_id
        with self.connection.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(table("passages", build))) as copy:
            copy.set_types(["bigint", "int4", "text", "text", "text", "text", "text", "text", "int4", "int4", "int4[]", "int4[]",
                            "text", "jsonb", "bytea", "vector"])
            for number, (passage, vector) in enumerate(zip(passages, passage_vectors)):
                copy.write_row((build, first + number, passage.id, passage.doc_id, passage.title, passage.section, passage.kind,
                                passage.text, passage.start, passage.end, list(passage.footnotes),
                                [i for span in passage.sentences for i in span], passage.file,
                                Jsonb([list(notes) for notes in passage.sentence_footnotes]), keys[number], vector))
        sentence_keys = iter(keys[len(passages):])
        vectors = iter(sentence_vectors)
        with self.connection.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(table("sentences", build))) as copy:
            copy.set_types(["bigint", "int4", "int4", "bytea", "vector"])
            for number, passage in enumerate(passages):
                for position in range(len(passage.sentences)):
                    copy.write_row((build, first + number, position, next(sentence_keys), next(vectors)))
        self.passages += passages

    def finish(self, manifest: Manifest, documents, settings: Settings) -> Manifest:
        """BM25 postings, documents, indexes; then, in one transaction, attach the tables as
        partitions and make this build current. Builds older than the previous one are dropped."""
        connection, build = self.connection, self.build_id
        lexical = LexicalIndex.build(lexical_text(p) for p in self.passages).model
        indptr, indices, data = lexical.scores["indptr"], lexical.scores["indices"], lexical.scores["data"]
        with connection.cursor().copy(sql.SQL("COPY {} FROM STDIN (FORMAT BINARY)").format(table("postings", build))) as copy:
            copy.set_types(["bigint", "text", "int4[]", "float4[]"])
            for term, i in lexical.vocab_dict.items():
                if term and i + 1 < len(indptr) and indptr[i] < indptr[i + 1]:
                    copy.write_row((build, term, indices[indptr[i] : indptr[i + 1]].tolist(), data[indptr[i] : indptr[i + 1]].tolist()))
        spans = document_rows(self.passages)
        with connection.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO citeqa.documents VALUES (%s, %s, %s, %s, %s, %s)",
                [(build, d.doc_id, d.title, Jsonb({n: r.text for n, r in d.references.items()}), *spans.get(d.doc_id, (0, 0)))
                 for d in documents])
        description = vector_index_description(len(self.passages), settings)
        if description["type"] == "hnsw":
            description["ef_search"] = min(settings.pg_ef_search, PGVECTOR_MAX_EF_SEARCH)
        self._index(description)
        manifest = replace(manifest, vector_index=description)
        previous = connection.execute("SELECT build_id FROM citeqa.current_build").fetchone()
        with connection.transaction():
            for name in PARTITIONED:
                connection.execute(sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES IN ({})").format(
                    table(name), table(name, build), sql.Literal(build)))
            connection.execute("UPDATE citeqa.builds SET state = 'done', manifest = %s WHERE id = %s", (Jsonb(asdict(manifest)), build))
            connection.execute("INSERT INTO citeqa.current_build (build_id) VALUES (%s) ON CONFLICT (one) DO UPDATE SET build_id = excluded.build_id",
                               (build,))
        _drop_builds(connection, keep={build, *(previous or ())})
        return manifest

    def _index(self, description: dict) -> None:
        """Primary keys, a partition constraint (so ATTACH does not scan), the document index,
        HNSW on the passage vectors when the description asks for it; then statistics."""
        connection, build = self.connection, self.build_id
        value = sql.Literal(build)
        connection.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (build_id, row), ADD CHECK (build_id = {})").format(table("passages", build), value))
        connection.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (build_id, row, position), ADD CHECK (build_id = {})").format(table("sentences", build), value))
        connection.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY (build_id, term), ADD CHECK (build_id = {})").format(table("postings", build), value))
        connection.execute(sql.SQL("CREATE INDEX ON {} (doc_id, row)").format(table("passages", build)))
        connection.execute(sql.SQL("CREATE INDEX ON {} (id)").format(table("passages", build)))
        if description["type"] == "hnsw":
            connection.execute("SET maintenance_work_mem = '4GB'")  # the HNSW graph of a million vectors fits: built in memory
            connection.execute("SET max_parallel_maintenance_workers = 1")
            connection.execute(sql.SQL("CREATE INDEX ON {} USING hnsw (embedding vector_ip_ops) WITH (m = {}, ef_construction = {})").format(
                table("passages", build), sql.Literal(int(description["m"])), sql.Literal(int(description["ef_construction"]))))
        for name in PARTITIONED:
            connection.execute(sql.SQL("ANALYZE {}").format(table(name, build)))


def _drop_builds(connection: psycopg.Connection, keep: set[int]) -> None:
    """Drop every build but ``keep``: finished ones (their partitions) and unfinished ones left by
    a killed build (their unattached tables). Called with the build lock held."""
    for build, state in connection.execute("SELECT id, state FROM citeqa.builds WHERE NOT id = ANY(%s) ORDER BY id", (list(keep),)).fetchall():
        for name in PARTITIONED:
            if state == "done":
                connection.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY").format(table(name), table(name, build)))
            connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table(name, build)))
        connection.execute("DELETE FROM citeqa.builds WHERE id = %s", (build,))


@contextmanager
def building(url: str, dimension: int) -> Iterator[tuple[psycopg.Connection, int | None]]:
    """A build connection holding the build lock, with the schema ready and what killed builds
    left behind removed; yields it and the current build's id (None if there is none)."""
    location = redacted(url)
    with connect(url, read_only=False) as connection:
        with build_lock(connection):
            try:
                prepare_schema(connection, location, dimension)
                current = connection.execute("SELECT build_id FROM citeqa.current_build").fetchone()
                finished = connection.execute("SELECT id FROM citeqa.builds WHERE state = 'done'").fetchall()
                _drop_builds(connection, keep={build for build, in finished})  # what killed builds left
                register_vector(connection)
                yield connection, None if current is None else current[0]
            except psycopg.errors.InsufficientPrivilege as error:
                raise IndexUnusableError(f"the user of {location} may not build the index ({error}): build with a role that owns the citeqa schema") from None


def build_database(corpus: Corpus, settings: Settings, embedder, progress: Progress | None = None, full: bool = False) -> BuildReport:
    """Parse, split, embed and write a new build into the database, then switch to it in one
    transaction. Texts already embedded by the current build (same model, same text: their sha256)
    reuse their vectors unless ``full``."""
    started = time.perf_counter()
    passages = corpus_passages(corpus, settings)
    texts = embedded_texts(passages)
    dimension = embedder.get_embedding_dimension()
    with building(str(settings.index), dimension) as (connection, current):
        if vector_index_description(len(passages), settings)["type"] == "hnsw":
            require_pgvector(connection, PGVECTOR_HNSW, f"an HNSW index (above {settings.ann_threshold} passages)", redacted(str(settings.index)))
        known = {} if full or current is None else _reusable_vectors(connection, current, settings.model)
        vectors = np.zeros((len(texts), dimension), dtype=np.float32)
        missing = []
        for row, text in enumerate(texts):
            vector = known.get(bytes.fromhex(text.key))
            if vector is None:
                missing.append(row)
            else:
                vectors[row] = vector
        stage = DatabaseBuild(connection, dimension)  # its tables exist from now on: a killed build leaves them to the next
        for rows, embedded in embed_batches(embedder, texts, missing, progress):
            vectors[rows] = embedded
        stage.add(passages, vectors[: len(passages)], vectors[len(passages) :])
        stage.finish(new_manifest(settings, dimension, corpus.files, len(corpus.documents), len(passages)), corpus.documents, settings)
    return BuildReport(redacted(str(settings.index)), len(corpus.documents), len(passages), len(missing), len(texts) - len(missing),
                       corpus.skipped, time.perf_counter() - started)


def _reusable_vectors(connection: psycopg.Connection, build: int, model: str) -> dict[bytes, np.ndarray]:
    """The vectors of the current build's texts by sha256, if it was made with this model."""
    manifest = connection.execute("SELECT manifest FROM citeqa.builds WHERE id = %s", (build,)).fetchone()[0]
    if manifest["model"] != model:
        return {}
    rows = connection.execute("SELECT text_hash, embedding FROM citeqa.passages WHERE build_id = %s UNION ALL "
                              "SELECT text_hash, embedding FROM citeqa.sentences WHERE build_id = %s", (build, build)).fetchall()
    return {key: vector.to_numpy() for key, vector in rows}


def database_bytes(url: str) -> int:
    """The size on disk of the current build: its partitions with their indexes, and its documents."""
    with connect(url, read_only=True) as connection:
        build = _current_build_id(connection, redacted(url))
        total = sum(connection.execute("SELECT pg_total_relation_size(%s::regclass)", (f"{SCHEMA}.{name}_{build}",)).fetchone()[0]
                    for name in PARTITIONED)
        return total + connection.execute("SELECT pg_total_relation_size('citeqa.documents')").fetchone()[0]

