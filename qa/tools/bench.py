"""`qa bench`: how fast citeqa loads, builds and answers, on the real corpus and on a synthetic one.

The real part builds the bundled corpus from scratch (every text embedded), then times each step
of answering the dev questions: embed, dense search, BM25, fusion and sentence selection; and,
in fresh processes on that index, what a user's `citeqa ask` pays: import, load, first answer,
and one whole `python -m qa ask` process (``cold_start``).

The synthetic part makes a French corpus of N passages by recombining, with a seeded RNG, the
sentences of the real index into passages of 1 to 5 sentences. Its vectors are not computed by
the model (35 texts/s would take hours at a million): a synthetic passage's vector is the
normalised mean of its sentences' real vectors plus small seeded noise, and its sentences keep
their real vectors (plus noise). The FAISS index (exact or HNSW, as the build chooses), BM25 and
the search are real, and so are the questions' embeddings. The ANN's recall@10 is measured
against exact search over the same vectors.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import faiss
import numpy as np

from qa.config import Settings, is_database_url
from qa.ingest.corpus import read_corpus
from qa.store.folder import SearchIndex, load_index, search_threads
from qa.store.folder_build import build_index
from qa.answer.retrieve import Retriever
from qa.answer.pipeline import AnswerModels
from qa.store.contract import IndexUnusableError
from qa.tools.bench_report import (
    bench_questions,
    cold_start,
    load_timed,
    BenchReport,
    CorpusBench,
    RECALL_K,
    RECALL_QUERIES,
    folder_bytes,
    machine_description,
    peak_rss_mb,
    recall,
    rss_mb,
    time_questions,
)
from qa.tools.synthetic import NOISE, build_synthetic, noisy


def run_bench(
    settings: Settings, passages: int, seed: int = 0, compare_ann: bool = False,
    ef_searches: tuple[int, ...] = (), keep: Path | None = None, rounds: int = 3,
) -> BenchReport:
    """Benchmark the real corpus, then a synthetic one of ``passages`` passages (0: none).

    ``rounds``: passes over the questions timed (after one warm-up).
    ``ef_searches``: also measure the synthetic HNSW index at each of these efSearch values.
    ``keep``: write the synthetic index into this folder and leave it there; when the folder
    already holds the synthetic index of the same size, seed and index settings, it is
    measured again without being rebuilt (its recorded build time is reported)."""
    if is_database_url(settings.index):
        if ef_searches or keep:
            raise ValueError("--ef-search and --keep measure an index folder, not a database")
        from qa.tools.pg_bench import run_database_bench

        return run_database_bench(settings, passages, seed, compare_ann, rounds)
    loaded = load_timed(settings)
    embedder, models, questions = loaded.embedder, loaded.models, bench_questions()
    comparison: list[dict] = []
    sweep: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as work:
        real_settings = replace(settings, index=Path(work) / "real")
        report = build_index(read_corpus(real_settings.corpus), real_settings, embedder, full=True)
        corpora = [measure("real corpus", real_settings.index, embedder, models, questions, report.seconds, settings=settings, rounds=rounds)]
        cold = cold_start(real_settings, rounds)
        if passages:
            synthetic = replace(settings, index=keep or Path(work) / "synthetic")
            seconds = kept_build_seconds(synthetic, passages, seed)
            if seconds is None:
                seconds = build_synthetic(load_index(real_settings.index), passages, seed, synthetic)
                if keep is not None:
                    (keep / KEPT).write_text(json.dumps(kept_description(synthetic, passages, seed, seconds)), "utf-8")
            corpora.append(measure(f"synthetic {passages}", synthetic.index, embedder, models, questions, seconds, seed, settings, rounds))
            if ef_searches or compare_ann:
                index = load_index(synthetic.index)
                queries = query_vectors(index, Retriever(index, embedder), questions, seed)
                exact = exact_top(index.vectors, queries, RECALL_K)
                if index.manifest.vector_index["type"] == "hnsw":
                    with search_threads(settings):
                        sweep = ef_sweep(index, embedder, questions, queries, exact, ef_searches or EF_SEARCHES, rounds)
                if compare_ann:
                    comparison = ann_comparison(index, queries, exact, seed)
    return BenchReport(machine_description(), round(loaded.model_seconds, 3), round(loaded.reader_seconds, 3), corpora, peak_rss_mb(), comparison, sweep,
                       os.getloadavg(), cold)


KEPT = "bench.json"  # what a kept synthetic index was built from, and how long it took
EF_SEARCHES = (32, 64, 128, 256, 512)  # swept by --compare-ann when no --ef-search is given


def kept_description(settings: Settings, passages: int, seed: int, seconds: float | None = None) -> dict:
    """What identifies a kept synthetic index: its size, seed, noise and index settings."""
    description = {"passages": passages, "seed": seed, "noise": NOISE, "ann_threshold": settings.ann_threshold,
                   "hnsw_m": settings.hnsw_m, "hnsw_ef_construction": settings.hnsw_ef_construction}
    return description if seconds is None else {**description, "build_seconds": seconds}


def kept_build_seconds(settings: Settings, passages: int, seed: int) -> float | None:
    """The build time of the synthetic index kept in ``settings.index``, if it is the one asked for."""
    try:
        kept = json.loads((settings.index / KEPT).read_text("utf-8"))
        load_index(settings.index)  # raises if it is not a usable index
    except (OSError, ValueError, IndexUnusableError):
        return None
    seconds = kept.pop("build_seconds", None)
    return seconds if kept == kept_description(settings, passages, seed) else None


def measure(name: str, root: Path, embedder, models: AnswerModels, questions: list[str], build_seconds: float, seed: int = 0,
            settings: Settings | None = None, rounds: int = 3) -> CorpusBench:
    """Load an index and time its questions (FAISS with ``settings.search_threads``, as an engine
    searches); for an ANN index, its recall against exact search."""
    before = rss_mb()
    started = time.perf_counter()
    index = load_index(root)
    load_seconds = time.perf_counter() - started
    index_rss = rss_mb() - before
    retriever = Retriever(index, embedder)
    with search_threads(settings or Settings()):
        timed = time_questions(retriever, models, questions, rounds)
    recall = None if index.manifest.vector_index["type"] == "flat" else ann_recall(index, query_vectors(index, retriever, questions, seed))
    return CorpusBench(
        name=name,
        passages=len(index.passages),
        sentences=len(index.sentence_matrix),
        build_seconds=round(build_seconds, 2),
        build_passages_per_s=round(len(index.passages) / build_seconds, 1),
        load_seconds=round(load_seconds, 2),
        index_mb=round(folder_bytes(index.folder) / 2**20, 1),
        index_rss_mb=round(index_rss, 1),
        vector_index=index.manifest.vector_index,
        query=timed,
        recall_at_10=recall,
    )


def query_vectors(index: SearchIndex, retriever: Retriever, questions: list[str], seed: int) -> np.ndarray:
    """Query vectors for recall: the dev questions' embeddings, then noisy sentence vectors of the index."""
    asked = np.vstack([retriever.embed_question(q) for q in questions])
    rng = np.random.default_rng(seed + 1)
    rows = np.sort(rng.choice(len(index.sentence_matrix), RECALL_QUERIES - len(asked), replace=False))
    return np.vstack([asked, noisy(np.asarray(index.sentence_matrix[rows]), rng)])


def exact_top(index: faiss.Index, queries: np.ndarray, k: int, batch: int = 50_000) -> np.ndarray:
    """The exact top-k rows by inner product, reconstructing the stored vectors a batch at a time."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, index.ntotal, batch):
        vectors = index.reconstruct_n(start, min(batch, index.ntotal - start))
        scores = np.hstack([best_scores, queries @ vectors.T])
        rows = np.hstack([best_rows, np.broadcast_to(np.arange(start, start + len(vectors)), (len(queries), len(vectors)))])
        top = np.argsort(-scores, axis=1)[:, :k]
        best_scores, best_rows = np.take_along_axis(scores, top, 1), np.take_along_axis(rows, top, 1)
    return best_rows


def ann_recall(index: SearchIndex, queries: np.ndarray) -> float:
    """recall@10 of the index's FAISS search against exact search over the same vectors."""
    _, found = index.vectors.search(queries, RECALL_K)
    return recall(found, exact_top(index.vectors, queries, RECALL_K))


def ef_sweep(index: SearchIndex, embedder, questions: list[str], queries: np.ndarray, exact: np.ndarray,
             ef_searches: tuple[int, ...], rounds: int = 3) -> list[dict]:
    """For each efSearch: the HNSW index's recall@10 against exact search, its own p50 time for
    100 candidates, and the p50/p95 of the whole search step (dense + BM25 + union) of the questions."""
    retriever = Retriever(index, embedder)
    kept = index.vectors.hnsw.efSearch
    rows = []
    try:
        for ef in ef_searches:
            index.vectors.hnsw.efSearch = ef
            timed = time_questions(retriever, None, questions, rounds)  # the retrieval alone: its search step is what changes
            search, cpu = timed["search"], timed["cpu"]["search"]
            rows.append({"index": f"HNSW{index.manifest.vector_index['m']}", "ef_search": ef,
                         **search_figures(index.vectors, queries, exact), "search_p50_ms": search.p50_ms,
                         "search_p95_ms": search.p95_ms, "search_cpu_p50_ms": cpu.p50_ms, "search_cpu_p95_ms": cpu.p95_ms})
    finally:
        index.vectors.hnsw.efSearch = kept
    return rows


def ann_comparison(index: SearchIndex, queries: np.ndarray, exact: np.ndarray, seed: int) -> list[dict]:
    """recall@10 and p50 search time of IVF-PQ (several nprobe, with and without exact
    re-ranking) over the synthetic passage vectors."""
    vectors = index.vectors.reconstruct_n(0, index.vectors.ntotal)
    rows = []
    nlist = int(4 * np.sqrt(len(vectors)))
    for m in (48, 64):
        started = time.perf_counter()
        quantiser = faiss.IndexFlatIP(vectors.shape[1])
        ivfpq = faiss.IndexIVFPQ(quantiser, vectors.shape[1], nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(seed).choice(len(vectors), min(len(vectors), 64 * nlist), replace=False)
        ivfpq.train(vectors[np.sort(sample)])
        ivfpq.add(vectors)
        refined = faiss.IndexRefineFlat(ivfpq, faiss.swig_ptr(vectors))
        refined.k_factor = 4
        build = round(time.perf_counter() - started, 1)
        for nprobe in (16, 32, 64):
            ivfpq.nprobe = nprobe
            rows.append({"index": f"IVF{nlist},PQ{m}", "nprobe": nprobe, "build_s": build, **search_figures(ivfpq, queries, exact)})
            rows.append({"index": f"IVF{nlist},PQ{m}+refine4", "nprobe": nprobe, "build_s": build, **search_figures(refined, queries, exact)})
    return rows


def search_figures(index: faiss.Index, queries: np.ndarray, exact: np.ndarray) -> dict:
    """recall@10 against exact, and p50 time of one query searched alone for 100 candidates."""
    _, found = index.search(queries, RECALL_K)
    times, cpu = [], []
    for query in queries:
        started, started_cpu = time.perf_counter(), time.process_time()
        index.search(query[None, :], 100)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    return {"recall_at_10": recall(found, exact), "faiss_p50_ms": round(float(np.percentile(times, 50)), 2),
            "faiss_cpu_p50_ms": round(float(np.percentile(cpu, 50)), 2)}


