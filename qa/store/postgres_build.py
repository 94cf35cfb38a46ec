"""Writing a build into PostgreSQL: its rows in tables of its own, attached as partitions and
made current in one transaction, under an advisory lock (the layout: ``qa.store.postgres``)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import asdict, replace
from typing import Iterator

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb

from qa.config import Settings
from qa.ingest.corpus import Corpus
from qa.ingest.passages import Passage
from qa.store.building import (
    BuildReport,
    Progress,
    corpus_passages,
    document_rows,
    embed_batches,
    embedded_texts,
    lexical_text,
    new_manifest,
    vector_index_description,
)
from qa.store.contract import IndexUnusableError, Manifest
from qa.store.lexical import LexicalIndex
from qa.store.postgres_connection import (
    LOCK,
    PARTITIONED,
    PGVECTOR_HNSW,
    PGVECTOR_MAX_EF_SEARCH,
    SCHEMA,
    SCHEMA_VERSION,
    connect,
    redacted,
    require_pgvector,
    schema_state,
    table,
)


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
    if schema_state(connection) == (SCHEMA_VERSION, dimension):
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
        stage.finish(new_manifest(settings, dimension, corpus.files, len(corpus.documents), len(passages), corpus.skipped), corpus.documents, settings)
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
