"""The index in PostgreSQL: a real server started by the tests, the real model and corpus.

One server per session (tests/pg_server.py). The bundled corpus is built once into a template
database; each test gets its own copy (CREATE DATABASE … TEMPLATE, a file copy), so no test
sees another's changes.
"""

from __future__ import annotations

import itertools
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import psycopg
import pytest

from api_server import Server
from conftest import BAIKONOUR, BAIKONOUR_QUESTION, CORPUS_FILE, ROOT, dev_questions, run_command, small_corpus
from pg_server import PostgresServer, server_for_tests
from qa.config import Settings
from qa.engine import build, index_status, open_engine
from qa.store.contract import IncompatibleIndexError, IndexUnusableError, MissingIndexError

TEMPLATE = "bundled"
BORDER = "Quelle est la longueur de la frontière ?"
SOLDIERS = "Combien de soldats la Russie a-t-elle déployés en janvier 2022 ?"
_numbers = itertools.count()


@pytest.fixture(scope="session")
def server(tmp_path_factory, embedder):
    """The session's server, with the bundled corpus built into the template database."""
    server = server_for_tests()
    server.sql(f"CREATE DATABASE {TEMPLATE}")
    build(Settings.from_env(index=server.url(database=TEMPLATE)), embedder)
    yield server
    server.stop()


@dataclass
class Database:
    server: PostgresServer
    name: str
    settings: Settings  # a private copy of the bundled corpus, indexed in this database

    @property
    def url(self) -> str:
        return self.settings.index

    def fetch(self, query: str, *parameters) -> list[tuple]:
        with psycopg.connect(self.url, autocommit=True) as connection:
            return connection.execute(query, parameters).fetchall()

    def builds(self) -> list[tuple[int, str]]:
        return self.fetch("SELECT id, state FROM citeqa.builds ORDER BY id")

    def build_tables(self) -> set[str]:
        """The per-build tables (partitions, attached or not)."""
        return {name for name, in self.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'citeqa' AND tablename ~ '_[0-9]+$'")}


@pytest.fixture
def database(server, tmp_path) -> Database:
    name = f"test_{next(_numbers)}"
    server.sql(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(CORPUS_FILE, corpus)
    return Database(server, name, Settings.from_env(corpus=corpus, index=server.url(database=name)))


def article(settings: Settings) -> Path:
    return settings.corpus / CORPUS_FILE.name


def border_answer(settings: Settings, embedder) -> str:
    return open_engine(settings, embedder).ask(BORDER).answer_sentence.replace("\u00a0", " ")


def cli_arguments(settings: Settings, *arguments: str) -> list[str]:
    return ["--corpus", str(settings.corpus), "--index", settings.index, *arguments]


def qa_command(settings: Settings, *arguments: str) -> list[str]:
    return [sys.executable, "-m", "qa", *cli_arguments(settings, *arguments)]


def test_the_database_answers_as_the_folder_does(database, engine, embedder):
    on_postgres = open_engine(database.settings, embedder)
    for question in [row["question"] for row in dev_questions()]:
        folder, postgres = engine.ask(question), on_postgres.ask(question)
        assert [p.passage.id for p in postgres.passages] == [p.passage.id for p in folder.passages], question
        assert postgres.answer_sentence == folder.answer_sentence
        assert [p.score for p in postgres.passages] == pytest.approx([p.score for p in folder.passages], abs=1e-4)


def test_above_the_threshold_pgvector_hnsw_answers_as_the_folder_does(database, engine, embedder):
    settings = replace(database.settings, ann_threshold=10)
    report = build(settings, embedder)
    assert report.embedded == 0  # the vectors are the same, only the index changes
    hnsw = open_engine(settings, embedder)
    assert hnsw.store.manifest.vector_index == {"type": "hnsw", "m": settings.hnsw_m, "ef_construction": settings.hnsw_ef_construction,
                                                "ef_search": settings.pg_ef_search}
    assert database.fetch("SELECT count(*) FROM pg_indexes WHERE schemaname = 'citeqa' AND indexdef ~ 'USING hnsw'") == [(1,)]
    for question in [row["question"] for row in dev_questions()]:
        assert [p.passage.id for p in hnsw.ask(question).passages] == [p.passage.id for p in engine.ask(question).passages], question


def test_editing_one_paragraph_embeds_only_it_and_the_new_text_answers(database, embedder):
    assert "6 846" in border_answer(database.settings, embedder)
    text = article(database.settings).read_text("utf-8")
    article(database.settings).write_text(text.replace("La démarcation devrait prendre de dix à quinze ans.",
                                                       "La démarcation devrait prendre de dix à vingt ans."), "utf-8")
    assert index_status(database.settings).stale == (f"{CORPUS_FILE.name} changed",)
    report = build(database.settings, embedder)
    assert report.embedded == 2  # the passage holding the sentence, and the sentence itself
    assert report.reused == report.passages + database.fetch("SELECT count(*) FROM citeqa.sentences s JOIN citeqa.current_build c USING (build_id)")[0][0] - 2
    status = index_status(database.settings)
    assert (status.problem, status.stale, status.manifest.passages) == (None, (), report.passages)
    assert "vingt ans" in open_engine(database.settings, embedder).ask("Combien de temps prendra la démarcation ?").answer_sentence
    assert [state for _, state in database.builds()] == ["done", "done"]  # the previous build is kept for readers still on it


def test_adding_an_article_and_asking_within_it(database, embedder):
    (database.settings.corpus / "baikonour.md").write_text(BAIKONOUR, "utf-8")
    report = build(database.settings, embedder)
    assert (report.documents, report.embedded) == (2, 2)
    engine = open_engine(database.settings, embedder)
    answer = engine.ask(BAIKONOUR_QUESTION)
    assert answer.passages[0].passage.title == "Baïkonour" and "2050" in answer.answer_sentence
    only_kazakhstan = engine.ask(BAIKONOUR_QUESTION, articles=frozenset({CORPUS_FILE.stem}))
    assert {p.passage.doc_id for p in only_kazakhstan.passages} == {CORPUS_FILE.stem}
    first = only_kazakhstan.passages[0].passage
    assert first in engine.store.neighbours(first)
    assert sum(engine.store.citation_counts(CORPUS_FILE.stem).values()) > 0


def test_a_build_killed_mid_way_leaves_the_old_index_answering(database, embedder):
    before = database.builds()
    process = subprocess.Popen(qa_command(database.settings, "build", "--full"), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    seen = ""
    while "embedding [" not in seen:  # its tables exist and it is embedding: well into the build
        char = process.stderr.read(1)
        assert char, f"the build ended before embedding: {seen}"
        seen += char
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert database.builds()[: len(before)] == before and database.builds()[-1][1] == "building"
    assert "6 846" in border_answer(database.settings, embedder)
    report = build(database.settings, embedder)  # the next build drops what the killed one left
    assert report.embedded == 0
    assert [state for _, state in database.builds()] == ["done", "done"]
    built = {f"{name}_{build_id}" for build_id, _ in database.builds() for name in ("passages", "sentences", "postings")}
    assert database.build_tables() == built


def test_two_builds_at_once_end_with_one_valid_index(database):
    (database.settings.corpus / "baikonour.md").write_text(BAIKONOUR, "utf-8")
    processes = [subprocess.Popen(qa_command(database.settings, "build"), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=600) for process in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    embedded = sorted(int(re.search(r"(\d+) texts embedded", out).group(1)) for out, _ in outputs)
    assert embedded == [0, 2]  # one waited for the other, then reused everything it embedded
    assert index_status(database.settings).manifest.documents == 2
    assert [state for _, state in database.builds()] == ["done", "done"]


READER = """
import json, sys, time
from pathlib import Path
from qa.config import Settings
from qa.engine import open_engine
engine = open_engine(Settings.from_env(index=sys.argv[1]))
stop, deadline = Path(sys.argv[2]), time.monotonic() + 300
questions = ["Quelle est la longueur de la frontière ?", "Combien de soldats la Russie a-t-elle déployés en janvier 2022 ?"]
while not stop.exists() and time.monotonic() < deadline:
    for question in questions:
        answer = engine.ask(question)
        print(json.dumps({"question": question, "sentence": answer.answer_sentence, "built": engine.store.manifest.built_at,
                          "passages": [p.passage.text for p in answer.passages]}), flush=True)
        time.sleep(0.2)  # a reader's pace, leaving the rebuild some of the two cores
"""


def reader_role(database: Database) -> str:
    """A role that may only read the citeqa tables (present and future); its URL."""
    database.server.sql(
        f"""DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'reader') THEN CREATE ROLE reader LOGIN PASSWORD 'lecture'; END IF; END $$;
        GRANT CONNECT ON DATABASE {database.name} TO reader; GRANT USAGE ON SCHEMA citeqa TO reader;
        GRANT SELECT ON ALL TABLES IN SCHEMA citeqa TO reader;""", database=database.name)
    return database.server.url(user="reader", password="lecture", database=database.name)


def test_two_readers_answer_completely_while_a_third_process_rebuilds(database, embedder, tmp_path):
    url, stop = reader_role(database), tmp_path / "stop"
    readers = [subprocess.Popen([sys.executable, "-c", READER, url, str(stop)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    lines: list[list[str]] = [[], []]
    try:
        for reader, seen in zip(readers, lines):  # both are answering before the rebuild starts
            seen.append(reader.stdout.readline())
            assert seen[-1], reader.stderr.read()
        old = index_status(database.settings).manifest.built_at
        time.sleep(1)  # built_at has a one-second resolution
        rebuild = subprocess.run(qa_command(database.settings, "build", "--full"), cwd=ROOT, capture_output=True, text=True, timeout=600)
        assert rebuild.returncode == 0, rebuild.stderr
        new = index_status(database.settings).manifest.built_at
        for reader, seen in zip(readers, lines):  # each goes on to answer from the new build
            while json.loads(seen[-1])["built"] != new:
                seen.append(reader.stdout.readline())
                assert seen[-1], reader.stderr.read()
    finally:
        stop.touch()
    for reader, seen in zip(readers, lines):
        out, err = reader.communicate(timeout=120)
        assert reader.returncode == 0, err
        answers = [json.loads(line) for line in seen + out.splitlines()]
        assert {a["built"] for a in answers} == {old, new}
        for answer in answers:
            expected = "6 846" if "frontière" in answer["question"] else "2000 soldats"
            assert expected in answer["sentence"].replace("\u00a0", " "), answer
            assert len(answer["passages"]) == 3 and all(answer["passages"])


def end_citeqa_sessions(database: Database) -> int:
    """End the database's citeqa connections, as an administrator would; how many there were."""
    return len(database.fetch("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = %s AND application_name = 'citeqa'",
                              database.name))


def test_after_a_server_restart_the_next_question_is_answered_on_a_new_connection(database, embedder):
    engine = open_engine(database.settings, embedder)
    assert "6 846" in engine.ask(BORDER).answer_sentence.replace("\u00a0", " ")
    database.server.restart()
    assert "2000 soldats" in engine.ask(SOLDIERS).answer_sentence


def test_a_backend_ended_during_a_question_says_so_and_the_next_question_reconnects(database, embedder, monkeypatch):
    engine = open_engine(database.settings, embedder)
    search = engine.store.dense_search

    def ended_first(*arguments):
        assert end_citeqa_sessions(database) == 1  # the question has started: its backend goes
        return search(*arguments)

    monkeypatch.setattr(engine.store, "dense_search", ended_first)
    with pytest.raises(IndexUnusableError, match=r"PostgreSQL at postgresql://postgres:\*\*\*@/test_\d+\?host=.* ended the connection during "
                       r"the question \(terminating connection due to administrator command\): the server crashed or restarted, "
                       r"or an administrator ended the session; ask again: the next question reconnects"):
        engine.ask(BORDER)
    monkeypatch.undo()
    assert "6 846" in engine.ask(BORDER).answer_sentence.replace("\u00a0", " ")


def test_the_api_on_a_database_shows_passages_and_answers_a_503_for_a_connection_lost_during_a_question(database, tmp_path):
    with Server(database.settings, tmp_path / "feedback.jsonl") as api, psycopg.connect(database.url) as admin:
        first = api.client.post("/ask", json={"question": SOLDIERS}).json()["passages"][0]
        passage = api.client.get(f"/passages/{first['id']}").json()  # the database's passage_with_id and neighbours
        assert (passage["text"], passage["footnotes"]) == (first["text"], first["footnotes"]) and len(passage["context"]) == 3
        admin.execute("LOCK TABLE citeqa.passages, citeqa.postings IN ACCESS EXCLUSIVE MODE")  # the next question waits on it
        with ThreadPoolExecutor(1) as pool:
            asked = pool.submit(api.client.post, "/ask", json={"question": SOLDIERS})
            while not database.fetch("SELECT 1 FROM pg_stat_activity WHERE datname = %s AND application_name = 'citeqa' AND wait_event_type = 'Lock'",
                                     database.name):
                assert not asked.done(), asked.result().text
                time.sleep(0.05)
            assert end_citeqa_sessions(database) >= 1
            response = asked.result()
        admin.rollback()
        assert response.status_code == 503
        assert "ended the connection during the question" in response.json()["detail"] and "***" in response.json()["detail"]
        again = api.client.post("/ask", json={"question": SOLDIERS})
        assert again.status_code == 200 and "2000 soldats" in again.json()["answer_sentence"]


def pretend_pgvector(database: Database, version: str) -> None:
    """Make the database report another pgvector version (its library stays the wheel's)."""
    database.server.sql(f"UPDATE pg_extension SET extversion = '{version}' WHERE extname = 'vector'", database=database.name)


def current_rows(database: Database, doc_id: str) -> list[int]:
    return [row for row, in database.fetch("SELECT row FROM citeqa.passages JOIN citeqa.current_build USING (build_id) WHERE doc_id = %s ORDER BY row",
                                           doc_id)]


def test_before_pgvector_0_8_an_article_filter_on_hnsw_scans_the_articles_rows(database, embedder):
    (database.settings.corpus / "baikonour.md").write_text(BAIKONOUR, "utf-8")
    settings = replace(database.settings, ann_threshold=10, pg_ef_search=1)  # alone, HNSW would give one row before the filter
    build(settings, embedder)
    pretend_pgvector(database, "0.7.4")  # no hnsw.iterative_scan
    database.server.sql(f"ALTER DATABASE {database.name} SET enable_sort = off")  # the planner takes the HNSW order, as on a large table
    store = open_engine(settings, embedder).store
    query = store.passage_vectors(np.array(current_rows(database, "baikonour")))[0]  # nearest to itself, outside the filter
    rows = np.array(current_rows(database, CORPUS_FILE.stem))
    exact = rows[np.argsort(-(store.passage_vectors(rows) @ query), kind="stable")[:5]]
    assert store.dense_search(query, 5, frozenset({CORPUS_FILE.stem})).tolist() == exact.tolist()
    assert store.query("SELECT current_setting('hnsw.iterative_scan') WHERE %s IS NOT NULL", ()) == [("off",)]  # left unset


def test_an_hnsw_index_on_pgvector_before_0_5_is_refused_naming_the_version(database, embedder):
    pretend_pgvector(database, "0.4.4")
    with pytest.raises(IndexUnusableError, match=r"an HNSW index \(above 10 passages\) needs pgvector 0\.5\.0 or newer, and the database "
                       r".* has 0\.4\.4: upgrade pgvector on the server"):
        build(replace(database.settings, ann_threshold=10), embedder)
    assert "6 846" in border_answer(database.settings, embedder)  # the index in use is untouched


def test_a_read_only_role_can_ask_but_not_build(database, embedder):
    reader = replace(database.settings, index=reader_role(database))
    assert "6 846" in border_answer(reader, embedder)
    assert index_status(reader).problem is None
    with pytest.raises(IndexUnusableError, match="may not"):
        build(reader, embedder)
    assert "6 846" in border_answer(reader, embedder)


def test_a_question_that_looks_like_sql_is_just_a_question(database, embedder):
    engine = open_engine(database.settings, embedder)
    for question in ["'; DROP TABLE passages; --", "'); DROP TABLE citeqa.passages; --", "\\x00 $1 %s {passages}"]:
        answer = engine.ask(question)
        assert answer.question == question
    engine.ask(SOLDIERS, articles=frozenset({"x'); DROP TABLE citeqa.builds; --"}))
    assert database.fetch("SELECT count(*) FROM citeqa.passages")[0][0] > 0
    assert "2000 soldats" in engine.ask(SOLDIERS).answer_sentence


def test_an_unreachable_server_is_named_in_the_message(database, embedder, tmp_path, capsys):
    url = f"postgresql://someone:secret-word@/citeqa?host={tmp_path / 'no-server-here'}"
    settings = replace(database.settings, index=url)
    with pytest.raises(IndexUnusableError, match="cannot reach PostgreSQL at postgresql://someone:\\*\\*\\*@/citeqa") as error:
        open_engine(settings, embedder)
    assert "secret-word" not in str(error.value)
    status, out, err = run_command(capsys, *cli_arguments(settings, "status"))
    assert status == 1 and "cannot reach PostgreSQL" in out
    assert "secret-word" not in out + err


def test_wrong_credentials_are_refused_without_showing_the_password(database, embedder, capsys):
    settings = replace(database.settings, index=database.server.url(password="not-the-password", database=database.name))
    with pytest.raises(IndexUnusableError, match="refused the credentials") as error:
        open_engine(settings, embedder)
    assert "not-the-password" not in str(error.value)
    status, out, err = run_command(capsys, *cli_arguments(settings, "ask", BORDER))
    assert status == 1 and "refused the credentials" in err
    assert "not-the-password" not in out + err
    status, out, err = run_command(capsys, *cli_arguments(database.settings, "status"))
    assert status == 0 and database.server.password not in out + err


def baikonour_answer(settings: Settings, embedder) -> str:
    return open_engine(settings, embedder).ask(BAIKONOUR_QUESTION).answer_sentence


def test_a_database_without_pgvector_says_how_to_add_it(server, embedder, tmp_path):
    name = f"bare_{next(_numbers)}"
    server.sql("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'owner') THEN CREATE ROLE owner LOGIN PASSWORD 'o'; END IF; END $$")
    server.sql(f"CREATE DATABASE {name} OWNER owner")
    # an empty database, built from scratch: the corpus of one paragraph, which takes a moment
    settings = replace(small_corpus(tmp_path), index=server.url(user="owner", password="o", database=name))
    with pytest.raises(MissingIndexError, match="no index in"):
        open_engine(settings, embedder)
    with pytest.raises(IndexUnusableError, match="lacks the pgvector extension .* `CREATE EXTENSION vector;`"):
        build(settings, embedder)
    server.sql("CREATE EXTENSION vector", database=name)  # what the administrator does
    build(settings, embedder)
    assert "2050" in baikonour_answer(settings, embedder)


def test_an_older_schema_is_reported_then_migrated_by_a_build(server, embedder, tmp_path):
    name = f"small_{next(_numbers)}"  # a migration embeds everything again: the corpus of one paragraph, in a database of its own
    server.sql(f"CREATE DATABASE {name}")
    settings = replace(small_corpus(tmp_path), index=server.url(database=name))
    build(settings, embedder)
    server.sql("UPDATE citeqa.schema SET version = 0", database=name)
    with pytest.raises(IncompatibleIndexError, match="schema version 0, this citeqa reads version 2: run `python -m qa --index URL build` to migrate"):
        open_engine(settings, embedder)
    assert "schema version 0" in index_status(settings).problem
    report = build(settings, embedder)
    assert (report.reused, report.embedded) == (0, 2)  # a migration embeds everything again
    assert "2050" in baikonour_answer(settings, embedder)


def test_an_index_of_another_model_is_refused(database, embedder):
    other = replace(database.settings, model="some/other-model")
    with pytest.raises(IncompatibleIndexError, match="built with model 'bundled:multilingual-e5-small'"):
        open_engine(other, embedder)


def test_status_and_ask_on_the_command_line(database, capsys):
    code, out, _ = run_command(capsys, *cli_arguments(database.settings, "status", "--json"))
    status = json.loads(out)
    assert code == 0 and status["documents"] == 1 and status["stale"] == [] and status["problem"] is None
    assert status["index"] == database.url.replace(database.server.password, "***")
    code, out, _ = run_command(capsys, *cli_arguments(database.settings, "ask", "--json", SOLDIERS))
    assert code == 0 and "2000 soldats" in json.loads(out)["answer_sentence"]


def test_the_app_answers_and_shows_the_status_from_the_database(database, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("QA_INDEX", database.url)
    monkeypatch.setenv("QA_CORPUS", str(database.settings.corpus))
    monkeypatch.setenv("QA_FEEDBACK", str(tmp_path / "feedback.jsonl"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
    assert not at.exception and not at.error
    documents, passages = at.sidebar.metric
    assert (documents.value, passages.value) == ("1", str(index_status(database.settings).manifest.passages))
    assert "À jour avec le corpus" in " ".join(c.value for c in at.sidebar.caption)
    at.chat_input[0].set_value(SOLDIERS).run()
    shown = at.chat_message[-1].markdown[1].value.replace("**", "")  # the short answer is in bold inside the sentence
    assert not at.exception and "2000 soldats" in shown
