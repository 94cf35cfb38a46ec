"""What `qa bench` reports and how it times a question: the figures' dataclasses, each step of
answering timed (wall clock and CPU), memory, the machine, and the printed table. Shared by the
folder (``qa.tools.bench``) and database (``qa.tools.pg_bench``) benchmarks."""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import faiss
import numpy as np

from qa.config import Settings
from qa.locations import PROJECT_ROOT
from qa.engine import load_answer_models
from qa.store.model import load_encoder
from qa.answer.candidates import find_candidates
from qa.answer.choose import choose
from qa.answer.reading import read
from qa.answer.retrieve import CANDIDATES, Retriever
from qa.answer.pipeline import AnswerModels


QUESTIONS = PROJECT_ROOT / "eval" / "dev.jsonl"


STAGES = ("embed", "search", "fusion", "candidates", "read", "choice")  # the steps of answering, in order


PARTS = ("faiss", "bm25")  # the two halves of "search", timed on their own


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
class ColdStart:
    """What a user's ``citeqa ask`` pays, in fresh processes (model exports cached; medians)."""

    import_seconds: float  # importing the command line and the engine
    load_seconds: float  # opening the engine: query encoder, index, sentence models, reader
    first_answer_seconds: float
    process_seconds: float  # one whole `python -m qa ask QUESTION` process, wall clock
    runs: int


COLD_QUESTION = "Quelle est la longueur de la frontière ?"
_COLD_SCRIPT = f"""
import json, time
started = time.perf_counter()
from qa.tools.cli import main
from qa.config import Settings
from qa.engine import open_engine
imported = time.perf_counter()
engine = open_engine(Settings.from_env())
loaded = time.perf_counter()
engine.ask({COLD_QUESTION!r})
print(json.dumps([imported - started, loaded - imported, time.perf_counter() - loaded]))
"""


def cold_start(settings: Settings, runs: int = 3) -> ColdStart:
    """Import, load and first-answer times of a fresh process, and the wall clock of a whole
    ``python -m qa ask`` process, each the median of ``runs`` runs with these settings."""
    environment = {**os.environ, **{f"QA_{f.name.upper()}": str(getattr(settings, f.name)) for f in fields(settings)}}
    steps, processes = [], []
    for _ in range(runs):
        done = subprocess.run([sys.executable, "-c", _COLD_SCRIPT], env=environment, capture_output=True, text=True, check=True)
        steps.append(json.loads(done.stdout.splitlines()[-1]))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "qa", "ask", COLD_QUESTION], env=environment, capture_output=True, check=True)
        processes.append(time.perf_counter() - started)
    imported, loaded, answered = (round(statistics.median(column), 2) for column in zip(*steps))
    return ColdStart(imported, loaded, answered, round(statistics.median(processes), 2), runs)


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
    cold_start: ColdStart | None = None


def time_questions(retriever: Retriever, models: AnswerModels | None, questions: list[str], rounds: int = 3) -> dict[str, Latency]:
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


def time_question(retriever: Retriever, models: AnswerModels | None, question: str) -> dict[str, float]:
    """The seconds each step of answering takes (wall clock, and "<step>_cpu" for the process's
    CPU time): Retriever.search's steps, then (unless ``models`` is None: the retrieval alone)
    the candidate sentences' signals, the reader's reading, and the choice of the answering
    sentence and its short answer; then, on their own, the dense and BM25 halves of the search."""
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
    if models is not None:
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


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return round(float(np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)])), 4)


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
    if report.cold_start:
        c = report.cold_start
        lines[-1:-1] = [f"fresh process (median of {c.runs}): import {c.import_seconds:.2f} s, load {c.load_seconds:.2f} s, "
                        f"first answer {c.first_answer_seconds:.2f} s; a whole `qa ask` process {c.process_seconds:.2f} s"]
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


@dataclass(frozen=True)
class Loaded:
    """The models a benchmark answers with, and how long each took to load."""

    embedder: object
    models: AnswerModels
    model_seconds: float
    reader_seconds: float  # the sentence models and the reader


def load_timed(settings: Settings) -> Loaded:
    started = time.perf_counter()
    embedder = load_encoder(settings)
    model_seconds = time.perf_counter() - started
    started = time.perf_counter()
    models = load_answer_models(settings)
    return Loaded(embedder, models, model_seconds, time.perf_counter() - started)


def bench_questions() -> list[str]:
    """The questions timed: those of eval/dev.jsonl."""
    return [json.loads(line)["question"] for line in QUESTIONS.read_text("utf-8").splitlines() if line.strip()]
