"""`qa bench`: runs on the bundled corpus and a tiny synthetic one, and reports every figure."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest

from qa.config import Settings
from qa.tools.bench import run_bench
from qa.tools.bench_report import PARTS, STAGES, format_report


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One run, as `qa --index EMPTY bench --passages 400 --ef-search 16,64 --rounds 1` makes it,
    with the ANN threshold at 200 so that the tiny synthetic corpus goes through HNSW."""
    index = tmp_path_factory.mktemp("bench-index")
    return run_bench(replace(Settings.from_env(index=index), ann_threshold=200), 400, ef_searches=(16, 64), rounds=1), index


def test_bench_reports_load_build_latency_size_and_memory(bench):
    report, index = json.loads(json.dumps(asdict(bench[0]))), bench[1]  # what `qa bench --json` prints
    assert report["model_load_seconds"] > 0 and report["reader_load_seconds"] > 0 and report["peak_rss_mb"] > 0
    assert {"cpu", "cores", "ram_gb"} <= report["machine"].keys()
    cold = report["cold_start"]  # a fresh process: what `citeqa ask` pays
    assert cold["runs"] == 1 and all(cold[k] > 0 for k in ("import_seconds", "load_seconds", "first_answer_seconds"))
    assert cold["process_seconds"] > cold["import_seconds"]
    real, synthetic = report["corpora"]
    assert (real["name"], real["passages"], real["vector_index"], real["recall_at_10"]) == ("real corpus", 32, {"type": "flat"}, None)
    assert (synthetic["passages"], synthetic["vector_index"]["type"]) == (400, "hnsw")
    assert synthetic["recall_at_10"] >= 0.95
    assert [row["ef_search"] for row in report["ef_sweep"]] == [16, 64]
    assert all(row["recall_at_10"] > 0 and row["search_p50_ms"] > 0 and row["search_cpu_p50_ms"] > 0 for row in report["ef_sweep"])
    for corpus in (real, synthetic):
        assert corpus["build_passages_per_s"] > 0 and corpus["index_mb"] > 0 and corpus["load_seconds"] >= 0
        assert set(corpus["query"]) == {*STAGES, "total", *PARTS, "cpu"}
        assert set(corpus["query"]["cpu"]) == {*STAGES, "total", *PARTS}
        assert all(0 < corpus["query"][stage]["p50_ms"] <= corpus["query"][stage]["p95_ms"] for stage in STAGES)
        assert 0 < corpus["query"]["cpu"]["total"]["p50_ms"] <= corpus["query"]["cpu"]["total"]["p95_ms"]
    assert list(index.iterdir()) == []  # the bench builds in a folder of its own


def test_bench_prints_a_table(bench):
    out = format_report(bench[0])
    assert "model load:" in out and "fresh process" in out and "real corpus" in out and "embed" in out and "read" in out and "CPU ms" in out
