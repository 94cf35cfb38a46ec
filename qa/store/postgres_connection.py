"""Connecting to the PostgreSQL index: the URL without its password, pgvector's version, the
schema's names and version (the layout is described in ``qa.store.postgres``)."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from qa.store.contract import IncompatibleIndexError, IndexUnusableError, MissingIndexError


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


def secret_free(message: str, url: str) -> str:
    """A server or libpq message with the URL's password blanked out, should it appear."""
    password = urlsplit(url).password or dict(parse_qsl(urlsplit(url).query)).get("password")
    return message.replace(password, "***") if password else message


def connect(url: str, read_only: bool) -> psycopg.Connection:
    """An autocommit connection (read-only if asked), or an IndexUnusableError saying why not."""
    location = redacted(url)
    try:
        connection = psycopg.connect(url, autocommit=True, connect_timeout=10, application_name="citeqa")
    except psycopg.OperationalError as error:
        detail = secret_free(str(error).strip().splitlines()[-1] if str(error).strip() else repr(error), url)
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


def schema_state(connection: psycopg.Connection) -> tuple[int, int] | None:
    """The schema version and dimension of the citeqa tables (None: there are none)."""
    if connection.execute("SELECT to_regclass('citeqa.schema')").fetchone()[0] is None:
        return None
    row = connection.execute(sql.SQL("SELECT version, dimension FROM {}").format(table("schema"))).fetchone()
    return None if row is None else (row[0], row[1])


def check_schema(connection: psycopg.Connection, location: str) -> None:
    """Refuse a database without the citeqa tables, or with tables of another schema version."""
    state = schema_state(connection)
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


def current_build_id(connection: psycopg.Connection, location: str) -> int:
    row = connection.execute(sql.SQL("SELECT build_id FROM {}").format(table("current_build"))).fetchone()
    if row is None:
        raise MissingIndexError(f"no index in {location}: no build has finished yet; build it with `python -m qa --index URL build`")
    return row[0]


def database_bytes(url: str) -> int:
    """The size on disk of the current build: its partitions with their indexes, and its documents."""
    with connect(url, read_only=True) as connection:
        build = current_build_id(connection, redacted(url))
        total = sum(connection.execute("SELECT pg_total_relation_size(%s::regclass)", (f"{SCHEMA}.{name}_{build}",)).fetchone()[0]
                    for name in PARTITIONED)
        return total + connection.execute("SELECT pg_total_relation_size('citeqa.documents')").fetchone()[0]
