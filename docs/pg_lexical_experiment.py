"""Which lexical ranking in PostgreSQL keeps citeqa's quality: full-text search or BM25 postings?

The experiment behind the choice recorded in docs/BENCHMARKS.md ("PostgreSQL backend"). Given a
database already built by `qa build` and a question file, it prints recall@1/@3 of the whole
pipeline (dense + lexical fusion, as shipped) with the lexical half served by:

- ``bm25``: the shipped BM25 postings (bm25s's weights, summed in SQL);
- ``ts_rank`` / ``ts_rank_cd``: PostgreSQL full text, French configuration (its stop words and
  Snowball stemmer) over the same accent-folded text BM25 reads (title, section, passage), the
  query being the OR of the question's terms, ranked by ts_rank (normalisation 1: divided by
  1 + log length) or ts_rank_cd (cover density).

The full-text column is made in a scratch table, dropped afterwards. Run:
    .venv/bin/python docs/pg_lexical_experiment.py URL QUESTIONS.jsonl [--corpus FOLDER]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qa.config import Settings  # noqa: E402
from qa.engine import Engine  # noqa: E402
from qa.tools.evaluate import evaluate, read_cases  # noqa: E402
from qa.store.building import lexical_text  # noqa: E402
from qa.store.model import load_embedder  # noqa: E402
from qa.store.postgres import DatabaseStore  # noqa: E402
from qa.store.postgres_connection import connect  # noqa: E402
from qa.answer.retrieve import Retriever  # noqa: E402
from qa.ingest.text import fold  # noqa: E402

SCRATCH = sql.Identifier("citeqa", "fulltext_experiment")
RANKINGS = {"ts_rank": "ts_rank(t.document, q, 1)", "ts_rank_cd": "ts_rank_cd(t.document, q, 1)"}


class FullTextStore(DatabaseStore):
    """The shipped store with its lexical search replaced by PostgreSQL full-text ranking."""

    def __init__(self, url: str, ranking: str) -> None:
        super().__init__(url)
        self.ranking = ranking

    def lexical_search(self, query_terms, width, articles=None):
        if not query_terms:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        query = sql.SQL("SELECT t.row, {ranking}::real FROM {scratch} t, to_tsquery('simple', %s) q"
                        " WHERE t.document @@ q ORDER BY 2 DESC, t.row LIMIT %s").format(ranking=sql.SQL(RANKINGS[self.ranking]), scratch=SCRATCH)
        rows = self._pin().connection.execute(query, (" | ".join(query_terms), width)).fetchall()
        return np.array([r for r, _ in rows], np.int64), np.array([s for _, s in rows], np.float32)


def make_scratch(url: str) -> None:
    """The full-text column of the current build's passages, in a scratch table."""
    store = DatabaseStore(url)
    rows = np.arange(store.manifest.passages)
    passages = store.passages_at(rows)
    with connect(url, read_only=False) as connection:
        connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(SCRATCH))
        connection.execute(sql.SQL("CREATE TABLE {} (row int PRIMARY KEY, document tsvector NOT NULL)").format(SCRATCH))
        with connection.cursor() as cursor:
            cursor.executemany(sql.SQL("INSERT INTO {} VALUES (%s, to_tsvector('french', %s))").format(SCRATCH),
                               [(int(row), fold(lexical_text(p))) for row, p in zip(rows, passages)])
        connection.execute(sql.SQL("CREATE INDEX ON {} USING gin (document)").format(SCRATCH))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("questions", type=Path)
    parser.add_argument("--corpus", type=Path)
    args = parser.parse_args()
    settings = Settings.from_env(index=args.url, corpus=args.corpus)
    embedder = load_embedder(settings)
    cases = read_cases(args.questions)
    make_scratch(args.url)
    try:
        for name in ("bm25", *RANKINGS):
            store = DatabaseStore(args.url) if name == "bm25" else FullTextStore(args.url, name)
            overall = evaluate(Engine(settings, embedder, store, Retriever(store, embedder)), cases)["overall"]
            print(f"{name:<11} R@1 {overall['recall@1']}  R@3 {overall['recall@3']}  answering sentence {overall['sentence_has_answer']}", flush=True)
    finally:
        with connect(args.url, read_only=False) as connection:
            connection.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(SCRATCH))


if __name__ == "__main__":
    main()
