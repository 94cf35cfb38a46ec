"""`qa bench`: how fast citeqa loads, builds and answers, on the real corpus and on a synthetic one.

The real part builds the bundled corpus from scratch (every text embedded), then times each step
of answering the dev questions: embed, dense search, BM25, fusion and sentence selection.

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
import platform
import resource
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import faiss
import numpy as np

from qa.config import PROJECT_ROOT, Settings, is_database_url
from qa.ingest.corpus import read_corpus
from qa.store.folder import SearchIndex, build_index, load_index, new_manifest, search_threads, staged_build
from qa.store.model import load_encoder
from qa.ingest.passages import Passage
from qa.answer.candidates import find_candidates
from qa.answer.choose import choose
from qa.answer.reading import read
from qa.answer.retrieve import CANDIDATES, Retriever
from qa.answer.pipeline import AnswerModels
from qa.engine import load_answer_models
from qa.store.contract import IndexUnusableError
from qa.ingest.text import footnotes_in

QUESTIONS = PROJECT_ROOT / "eval" / "dev.jsonl"
STAGES = ("embed", "search", "fusion", "candidates", "read", "choice")  # the steps of answering, in order
PARTS = ("faiss", "bm25")  # the two halves of "search", timed on their own
NOISE = 0.02  # per dimension (a norm of about 0.4): synthetic passages made of the same sentences stay distinct
RECALL_QUERIES = 200  # query vectors used to measure recall@10 against exact search
RECALL_K = 10


@dataclass(frozen=True)
class Latency:
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class CorpusBench:
    """The figures of one corpus: build, load, size on disk, memory, query latency per step."""

    name: str
    passages: int
    sentences: int
    build_seconds: float
    build_passages_per_s: float
    load_seconds: float
    index_mb: float  # size on disk
    index_rss_mb: float  # resident memory the loaded index added (memory-mapped sentence vectors excluded)
    vector_index: dict
    query: dict  # per step, "total" and the search's parts: a Latency (wall clock); "cpu": the same in CPU time
    recall_at_10: float | None = None  # of the ANN against exact search (None: exact search)


@dataclass(frozen=True)
class BenchReport:
    machine: dict
    model_load_seconds: float
    reader_load_seconds: float  # the sentence models and the reader (0 without one)
    corpora: list[CorpusBench]
    peak_rss_mb: float
    ann_comparison: list[dict] = field(default_factory=list)
    ef_sweep: list[dict] = field(default_factory=list)  # HNSW efSearch against recall and search time
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)  # 1, 5 and 15 min, at the end of the run


def run_bench(
    settings: Settings, passages: int, seed: int = 0, compare_ann: bool = False,
    ef_searches: tuple[int, ...] = (), keep: Path | None = None,
) -> BenchReport:
    """Benchmark the real corpus, then a synthetic one of ``passages`` passages (0: none).

    ``ef_searches``: also measure the synthetic HNSW index at each of these efSearch values.
    ``keep``: write the synthetic index into this folder and leave it there; when the folder
    already holds the synthetic index of the same size, seed and index settings, it is
    measured again without being rebuilt (its recorded build time is reported)."""
    if is_database_url(settings.index):
        if ef_searches or keep:
            raise ValueError("--ef-search and --keep measure an index folder, not a database")
        from qa.tools.pg_bench import run_database_bench

        return run_database_bench(settings, passages, seed, compare_ann)
    started = time.perf_counter()
    embedder = load_encoder(settings)
    model_seconds = time.perf_counter() - started
    started = time.perf_counter()
    models = load_answer_models(settings)
    reader_seconds = time.perf_counter() - started
    questions = [json.loads(line)["question"] for line in QUESTIONS.read_text("utf-8").splitlines() if line.strip()]
    comparison: list[dict] = []
    sweep: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as work:
        real_settings = replace(settings, index=Path(work) / "real")
        report = build_index(read_corpus(real_settings.corpus), real_settings, embedder, full=True)
        corpora = [measure("real corpus", real_settings.index, embedder, models, questions, report.seconds, settings=settings)]
        if passages:
            synthetic = replace(settings, index=keep or Path(work) / "synthetic")
            seconds = kept_build_seconds(synthetic, passages, seed)
            if seconds is None:
                seconds = build_synthetic(load_index(real_settings.index), passages, seed, synthetic)
                if keep is not None:
                    (keep / KEPT).write_text(json.dumps(kept_description(synthetic, passages, seed, seconds)), "utf-8")
            corpora.append(measure(f"synthetic {passages}", synthetic.index, embedder, models, questions, seconds, seed, settings))
            if ef_searches or compare_ann:
                index = load_index(synthetic.index)
                queries = query_vectors(index, Retriever(index, embedder), questions, seed)
                exact = exact_top(index.vectors, queries, RECALL_K)
                if index.manifest.vector_index["type"] == "hnsw":
                    with search_threads(settings):
                        sweep = ef_sweep(index, embedder, models, questions, queries, exact, ef_searches or EF_SEARCHES)
                if compare_ann:
                    comparison = ann_comparison(index, queries, exact, seed)
    return BenchReport(machine_description(), round(model_seconds, 2), round(reader_seconds, 2), corpora, peak_rss_mb(), comparison, sweep,
                       os.getloadavg())


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
            settings: Settings | None = None) -> CorpusBench:
    """Load an index and time its questions (FAISS with ``settings.search_threads``, as an engine
    searches); for an ANN index, its recall against exact search."""
    before = rss_mb()
    started = time.perf_counter()
    index = load_index(root)
    load_seconds = time.perf_counter() - started
    index_rss = rss_mb() - before
    retriever = Retriever(index, embedder)
    with search_threads(settings or Settings()):
        timed = time_questions(retriever, models, questions)
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


def time_questions(retriever: Retriever, models: AnswerModels, questions: list[str], rounds: int = 3) -> dict[str, Latency]:
    """p50 and p95 of each step of answering, over ``rounds`` passes of the questions (after one
    warm-up): wall-clock time, and under "cpu" the CPU time of the process (one torch thread,
    one FAISS thread, BM25 on a second thread during the search), which a busy machine
    inflates far less."""
    timings: dict[str, list[float]] = {}
    for round_number in range(rounds + 1):
        for question in questions:
            times = time_question(retriever, models, question)
            for stage, seconds in times.items():
                timings.setdefault(stage, []).extend([seconds * 1000] if round_number else [])
    latencies = {stage: Latency(round(float(np.percentile(v, 50)), 2), round(float(np.percentile(v, 95)), 2)) for stage, v in timings.items()}
    wall = {stage: latency for stage, latency in latencies.items() if not stage.endswith(CPU)}
    return {**wall, "cpu": {stage[: -len(CPU)]: latency for stage, latency in latencies.items() if stage.endswith(CPU)}}


CPU = "_cpu"


def time_question(retriever: Retriever, models: AnswerModels, question: str) -> dict[str, float]:
    """The seconds each step of answering takes (wall clock, and "<step>_cpu" for the process's
    CPU time): Retriever.search's steps, then the candidate sentences' signals, the reader's
    reading, and the choice of the answering sentence and its short answer; then, on
    their own, the dense and BM25 halves of the search."""
    clock, cpu = [time.perf_counter()], [time.process_time()]

    def tick() -> None:
        clock.append(time.perf_counter())
        cpu.append(time.process_time())

    query_vector = retriever.embed_question(question)
    tick()
    candidates = retriever.candidates(question, query_vector)
    tick()
    retrieval = retriever.rank(candidates, 3)
    tick()
    found = find_candidates(retrieval, models.sentence)
    tick()
    readings = read(models.reader, retrieval, found, models.read_windows) if models.reader else None
    tick()
    choose(found, readings, models.choice)
    tick()
    steps = dict(zip(STAGES, np.diff(clock)))
    steps.update({stage + CPU: seconds for stage, seconds in zip(STAGES, np.diff(cpu))})
    steps["total"], steps["total" + CPU] = clock[-1] - clock[0], cpu[-1] - cpu[0]
    store = retriever.store
    clock, cpu = [time.perf_counter()], [time.process_time()]
    store.dense_search(query_vector, CANDIDATES)
    tick()
    store.lexical_search(list(candidates.query_terms), CANDIDATES)
    tick()
    steps.update(zip(PARTS, np.diff(clock)))
    steps.update({part + CPU: seconds for part, seconds in zip(PARTS, np.diff(cpu))})
    return steps


def build_synthetic(source: SearchIndex, count: int, seed: int, settings: Settings) -> float:
    """Write an index of ``count`` synthetic passages recombined from ``source``; its seconds."""
    started = time.perf_counter()
    settings.index.mkdir(parents=True, exist_ok=True)
    sentences = 0
    with staged_build(settings.index, count, total_sentences(count, seed), source.manifest.dimension) as stage:
        passages: list[Passage] = []
        for batch, passage_vectors, sentence_vectors in synthetic_batches(source, count, seed, settings.build_batch):
            stage.passage_vectors[len(passages) : len(passages) + len(batch)] = passage_vectors
            stage.sentence_vectors[sentences : sentences + len(sentence_vectors)] = sentence_vectors
            passages += batch
            sentences += len(sentence_vectors)
        documents = tuple(source_documents(source))
        manifest = new_manifest(settings, source.manifest.dimension, {}, len(documents), count)
        stage.finish(manifest, documents, passages, settings)
    return time.perf_counter() - started


def total_sentences(count: int, seed: int) -> int:
    """How many sentences ``synthetic_batches`` makes for ``count`` passages."""
    return int(passage_lengths(np.random.default_rng(seed), count).sum())


def passage_lengths(rng: np.random.Generator, count: int) -> np.ndarray:
    """The sentence count of each synthetic passage: 1 to 5, the RNG's first draw for a seed."""
    return rng.integers(1, 6, size=count)


def synthetic_batches(source: SearchIndex, count: int, seed: int, batch_size: int):
    """``count`` synthetic passages of 1 to 5 sentences recombined from ``source``, with their
    vectors and their sentences' vectors, ``batch_size`` passages at a time (for either backend)."""
    sentences = [  # (passage, start, end, row of its vector) of every sentence of the source
        (passage, a, b, row)
        for position, passage in enumerate(source.passages)
        for row, (a, b) in enumerate(passage.sentences, source.sentence_rows[position])
    ]
    rng = np.random.default_rng(seed)
    lengths = passage_lengths(rng, count)
    picks = rng.integers(0, len(sentences), size=int(lengths.sum()))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        batch = picks[offsets[start] : offsets[stop]]
        sentence_vectors = noisy(np.asarray(source.sentence_matrix[[sentences[i][3] for i in batch]]), rng)
        means = np.add.reduceat(sentence_vectors, offsets[start:stop] - offsets[start])
        passages = [
            synthetic_passage(number, [sentences[i] for i in picks[offsets[number] : offsets[number + 1]]])
            for number in range(start, stop)
        ]
        yield passages, noisy(means, rng), sentence_vectors


def noisy(vectors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Vectors plus seeded Gaussian noise, normalised again."""
    vectors = vectors + rng.normal(0, NOISE, vectors.shape).astype(np.float32)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def synthetic_passage(number: int, sentences: list[tuple[Passage, int, int, int]]) -> Passage:
    """A passage made of these sentences (of real passages), in the document of the first."""
    first = sentences[0][0]
    parts = [p.text[a:b] for p, a, b, _ in sentences]
    spans, position = [], 0
    for part in parts:
        spans.append((position, position + len(part)))
        position += len(part) + 1
    text = " ".join(parts)
    return Passage(
        id=f"synthetic-{number}", doc_id=first.doc_id, title=first.title, section=first.section, kind="text",
        text=text, start=0, end=len(text), footnotes=footnotes_in(text), sentences=tuple(spans),
        sentence_footnotes=tuple(footnotes_in(part) for part in parts),
    )


@dataclass(frozen=True)
class _Reference:
    text: str


@dataclass(frozen=True)
class _Document:
    """What an index stores of a document, rebuilt from a loaded index's DocumentInfo."""

    doc_id: str
    title: str
    references: dict[int, _Reference]


def source_documents(source: SearchIndex) -> list[_Document]:
    return [_Document(d.doc_id, d.title, {n: _Reference(t) for n, t in d.references.items()}) for d in source.documents.values()]


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


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return round(float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)])), 4)


def ann_recall(index: SearchIndex, queries: np.ndarray) -> float:
    """recall@10 of the index's FAISS search against exact search over the same vectors."""
    _, found = index.vectors.search(queries, RECALL_K)
    return recall(found, exact_top(index.vectors, queries, RECALL_K))


def ef_sweep(index: SearchIndex, embedder, models: AnswerModels, questions: list[str], queries: np.ndarray, exact: np.ndarray,
             ef_searches: tuple[int, ...]) -> list[dict]:
    """For each efSearch: the HNSW index's recall@10 against exact search, its own p50 time for
    100 candidates, and the p50/p95 of the whole search step (dense + BM25 + union) of the questions."""
    retriever = Retriever(index, embedder)
    kept = index.vectors.hnsw.efSearch
    rows = []
    try:
        for ef in ef_searches:
            index.vectors.hnsw.efSearch = ef
            timed = time_questions(retriever, models, questions)
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


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def rss_mb() -> float:
    """This process's resident memory now."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def machine_description() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(memory_kb / 2**20, 1), "python": platform.python_version(),
            "faiss": faiss.__version__, "threads": faiss.omp_get_max_threads()}


def format_report(report: BenchReport) -> str:
    """A readable rendering: machine, model load, one table of corpora, one of query steps."""
    m = report.machine
    lines = [f"machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM; Python {m['python']}, FAISS {m['faiss']}",
             f"model load: {report.model_load_seconds:.2f} s; sentence models and reader: {report.reader_load_seconds:.2f} s; peak memory of this run: {report.peak_rss_mb:.0f} MB; "
             f"load average {' '.join(f'{x:.2f}' for x in report.load_average)}", ""]
    header = f"{'corpus':<20}{'passages':>10}{'sentences':>11}{'build s':>9}{'pass/s':>9}{'load s':>8}{'disk MB':>9}{'RSS MB':>8}  index   recall@10"
    lines.append(header)
    for c in report.corpora:
        recall_text = "exact" if c.recall_at_10 is None else f"{c.recall_at_10:.3f}"
        lines.append(f"{c.name:<20}{c.passages:>10}{c.sentences:>11}{c.build_seconds:>9.1f}{c.build_passages_per_s:>9.0f}"
                     f"{c.load_seconds:>8.2f}{c.index_mb:>9.1f}{c.index_rss_mb:>8.0f}  {c.vector_index['type']:<7} {recall_text}")
    columns = (*STAGES, "total", *PARTS)
    lines += ["", f"{'query ms (p50 / p95)':<20}" + "".join(f"{s:>16}" for s in columns)]
    for c in report.corpora:
        lines.append(f"{c.name:<20}" + "".join(f"{c.query[s].p50_ms:>8.2f} /{c.query[s].p95_ms:>6.1f}" for s in columns))
    lines += ["", f"{'CPU ms (p50 / p95)':<20}" + "".join(f"{s:>16}" for s in columns)]
    for c in report.corpora:
        lines.append(f"{c.name:<20}" + "".join(f"{c.query['cpu'][s].p50_ms:>8.2f} /{c.query['cpu'][s].p95_ms:>6.1f}" for s in columns))
    if report.ef_sweep:
        lines += ["", "HNSW efSearch sweep (recall@10 against exact; FAISS alone, 100 candidates; whole search step):"]
        lines += [f"  efSearch {row['ef_search']:>5}: recall@10 {row['recall_at_10']:.3f}, FAISS p50 {row['faiss_p50_ms']:.2f} ms "
                  f"(CPU {row['faiss_cpu_p50_ms']:.2f}), search p50 {row['search_p50_ms']:.2f} / p95 {row['search_p95_ms']:.2f} ms "
                  f"(CPU {row['search_cpu_p50_ms']:.2f} / {row['search_cpu_p95_ms']:.2f})" for row in report.ef_sweep]
    if report.ann_comparison:
        lines += ["", "ANN comparison (synthetic vectors):"]
        lines += ["  " + ", ".join(f"{k} {v}" for k, v in row.items()) for row in report.ann_comparison]
    return "\n".join(lines)
