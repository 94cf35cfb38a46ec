"""`qa bench --index postgresql://…`: the same figures as ``qa.tools.bench``, with the index in PostgreSQL.

The real corpus is built into the database from scratch (every text embedded). The synthetic
corpus is the one ``qa.tools.bench`` makes (same seed, same passages and vectors), written into the
database with COPY; its HNSW index (pgvector) is built by the server. recall@10 of the database's
dense search is measured against exact search over the same vectors, read back from the database.
The search parts keep ``qa.tools.bench``'s names: "faiss" is the dense half (here pgvector), "bm25"
the lexical half (here BM25 postings in the database).
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from pgvector.psycopg import register_vector
from psycopg import sql

from qa.tools.bench_report import (
    bench_questions,
    load_timed,
    BenchReport,
    CorpusBench,
    RECALL_K,
    RECALL_QUERIES,
    machine_description,
    peak_rss_mb,
    recall,
    rss_mb,
    time_questions,
)
from qa.tools.synthetic import noisy, source_documents, synthetic_batches
from qa.config import Settings
from qa.answer.pipeline import AnswerModels
from qa.ingest.corpus import read_corpus
from qa.store.building import new_manifest
from qa.store.folder import load_index
from qa.store.folder_build import build_index
from qa.store.postgres import DatabaseStore
from qa.store.postgres_build import DatabaseBuild, build_database, building
from qa.store.postgres_connection import connect, database_bytes, table
from qa.answer.retrieve import Retriever


def run_database_bench(settings: Settings, passages: int, seed: int = 0, compare_ann: bool = False, rounds: int = 3) -> BenchReport:
    """Benchmark the real corpus, then a synthetic one of ``passages`` passages, in the database."""
    if compare_ann:
        raise ValueError("--compare-ann compares FAISS indexes: use it with an index folder")
    url = str(settings.index)
    loaded = load_timed(settings)
    embedder, models, questions = loaded.embedder, loaded.models, bench_questions()
    report = build_database(read_corpus(settings.corpus), settings, embedder, full=True)
    corpora = [measure_database("real corpus", url, embedder, models, questions, report.seconds, seed, rounds)]
    if passages:
        with tempfile.TemporaryDirectory(prefix="qa-bench-") as work:
            source_settings = replace(settings, index=Path(work) / "real")
            build_index(read_corpus(settings.corpus), source_settings, embedder, full=True)
            source = load_index(source_settings.index)
            seconds = build_synthetic_database(source, passages, seed, settings)
        corpora.append(measure_database(f"synthetic {passages}", url, embedder, models, questions, seconds, seed, rounds))
    machine = {**machine_description(), "backend": "postgresql"}
    return BenchReport(machine, round(loaded.model_seconds, 2), round(loaded.reader_seconds, 2), corpora, peak_rss_mb(), load_average=os.getloadavg())


def build_synthetic_database(source, count: int, seed: int, settings: Settings) -> float:
    """Write ``qa.tools.bench``'s synthetic corpus into the database as a new build; its seconds."""
    started = time.perf_counter()
    dimension = source.manifest.dimension
    with building(str(settings.index), dimension) as (connection, _):
        stage = DatabaseBuild(connection, dimension)
        for passages, passage_vectors, sentence_vectors in synthetic_batches(source, count, seed, settings.build_batch):
            stage.add(passages, passage_vectors, sentence_vectors)
        documents = tuple(source_documents(source))
        stage.finish(new_manifest(settings, dimension, {}, len(documents), count), documents, settings)
    return time.perf_counter() - started


def measure_database(name: str, url: str, embedder, models: AnswerModels, questions: list[str], build_seconds: float, seed: int,
                     rounds: int = 3) -> CorpusBench:
    """Open the database's current build and time its questions; for HNSW, its recall@10."""
    before = rss_mb()
    started = time.perf_counter()
    store = DatabaseStore(url)
    load_seconds = time.perf_counter() - started
    retriever = Retriever(store, embedder)
    manifest = store.manifest
    counts = store.query("SELECT (SELECT count(*) FROM {passages} WHERE build_id = %s), (SELECT count(*) FROM {sentences} WHERE build_id = %s)",
                          (store.build_id,))
    passages, sentences = counts[0]
    query = time_questions(retriever, models, questions, rounds)
    recall_at_10 = None if manifest.vector_index["type"] == "flat" else database_recall(store, retriever, questions, seed)
    return CorpusBench(
        name=name, passages=passages, sentences=sentences, build_seconds=round(build_seconds, 2),
        build_passages_per_s=round(passages / build_seconds, 1), load_seconds=round(load_seconds, 2),
        index_mb=round(database_bytes(url) / 2**20, 1), index_rss_mb=round(rss_mb() - before, 1),
        vector_index=manifest.vector_index, query=query, recall_at_10=recall_at_10,
    )


def database_recall(store: DatabaseStore, retriever: Retriever, questions: list[str], seed: int) -> float:
    """recall@10 of the database's dense search against exact search over the same vectors: the
    dev questions, then noisy first-sentence vectors of random passages, as query vectors."""
    asked = np.vstack([retriever.embed_question(q) for q in questions])
    rng = np.random.default_rng(seed + 1)
    rows = np.sort(rng.choice(store.manifest.passages, RECALL_QUERIES - len(asked), replace=False))
    sampled = store.query("SELECT embedding FROM {sentences} WHERE build_id = %s AND row = ANY(%s) AND position = 0 ORDER BY row",
                           ([int(r) for r in rows],))
    queries = np.vstack([asked, noisy(np.vstack([v.to_numpy() for v, in sampled]), rng)]).astype(np.float32)
    found = [store.dense_search(q, RECALL_K) for q in queries]
    return recall(np.array(found), exact_database_top(store.build_id, store.url, queries, RECALL_K))


def exact_database_top(build_id: int, url: str, queries: np.ndarray, k: int, batch: int = 50_000) -> np.ndarray:
    """The exact top-k rows by inner product, reading the build's passage vectors in batches."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), k), dtype=np.int64)
    with connect(url, read_only=True) as connection, connection.transaction():
        register_vector(connection)
        with connection.cursor(name="vectors") as cursor:
            cursor.execute(sql.SQL("SELECT row, embedding FROM {} WHERE build_id = %s").format(table("passages")), (build_id,))
            while chunk := cursor.fetchmany(batch):
                rows = np.array([r for r, _ in chunk], dtype=np.int64)
                vectors = np.vstack([v.to_numpy() for _, v in chunk])
                scores = np.hstack([best_scores, queries @ vectors.T])
                candidates = np.hstack([best_rows, np.broadcast_to(rows, (len(queries), len(rows)))])
                top = np.argsort(-scores, axis=1)[:, :k]
                best_scores, best_rows = np.take_along_axis(scores, top, 1), np.take_along_axis(candidates, top, 1)
    return best_rows
