"""Scale: the approximate index above a threshold, batched builds, synthetic corpora, vectorised scoring."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from conftest import dev_questions
from qa.tools.bench import ann_recall, build_synthetic, query_vectors
from qa.config import Settings
from qa.engine import build, open_engine
from qa.store.folder import load_index
from qa.store.lexical import terms
from qa.answer.retrieve import Retriever


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory, engine):
    """An index of 3000 synthetic passages, built with the ANN threshold forced down to 1000."""
    settings = replace(Settings.from_env(), index=tmp_path_factory.mktemp("synthetic"), ann_threshold=1000)
    build_synthetic(engine.store, 3000, 7, settings)
    return load_index(settings.index)


def test_above_the_threshold_the_index_is_hnsw_and_the_manifest_says_so(synthetic):
    defaults = Settings()
    assert synthetic.manifest.vector_index == {"type": "hnsw", "m": defaults.hnsw_m, "ef_construction": defaults.hnsw_ef_construction,
                                               "ef_search": defaults.hnsw_ef_search}
    assert synthetic.vectors.ntotal == len(synthetic.passages) == 3000
    assert synthetic.vectors.hnsw.efSearch == defaults.hnsw_ef_search


def test_the_ann_finds_what_exact_search_finds(synthetic, engine):
    queries = query_vectors(synthetic, engine.retriever, [q["question"] for q in dev_questions()], seed=7)
    assert ann_recall(synthetic, queries) >= 0.95


def test_a_synthetic_corpus_is_french_text_of_real_sentences_and_reproducible(synthetic, engine, tmp_path):
    real_sentences = {p.text[a:b] for p in engine.store.passages for a, b in p.sentences}
    passage = synthetic.passages[0]
    assert 1 <= len(passage.sentences) <= 5
    assert all(passage.text[a:b] in real_sentences for a, b in passage.sentences)
    again = replace(Settings.from_env(), index=tmp_path, ann_threshold=1000)
    build_synthetic(engine.store, 3000, 7, again)
    assert [p.text for p in load_index(tmp_path).passages] == [p.text for p in synthetic.passages]


def test_questions_search_a_synthetic_index(synthetic, engine):
    retrieval = Retriever(synthetic, engine.embedder).search("Quelle est la longueur de la frontière ?", 3)
    assert len(retrieval.hits) == 3
    assert "frontière" in retrieval.hits[0].passage.text


def test_an_hnsw_build_of_the_bundled_corpus_gives_the_same_answers(private_corpus, embedder, engine):
    """Forced over the threshold and written in batches of 5 passages: the same answers as
    the exact index; a second build reuses the vectors kept by the HNSW index."""
    corpus = private_corpus.corpus
    settings = replace(private_corpus, ann_threshold=10, build_batch=5)
    build(settings, embedder)
    hnsw = open_engine(settings, embedder)
    assert hnsw.store.manifest.vector_index["type"] == "hnsw"
    for row in dev_questions():
        expected, actual = engine.ask(row["question"]), hnsw.ask(row["question"])
        assert [p.passage.id for p in actual.passages] == [p.passage.id for p in expected.passages]
        assert (actual.answered, actual.answer_sentence) == (expected.answered, expected.answer_sentence)
    (corpus / "autre.md").write_text("# Autre\n\nUn paragraphe sans rapport.\n", "utf-8")
    report = build(settings, embedder)
    assert (report.embedded, report.reused) == (2, len(hnsw.store.passages) + len(hnsw.store.sentence_matrix))
    rebuilt = load_index(settings.index)
    row = [p.id for p in rebuilt.passages].index(hnsw.store.passages[0].id)
    assert np.array_equal(rebuilt.vectors.reconstruct(row), hnsw.store.vectors.reconstruct(0))


def test_gathered_sentence_vectors_match_each_passage_s_own(engine):
    index = engine.store
    rows = np.array([5, 0, 17, 3])
    vectors, offsets = index.sentence_vectors(rows)
    for number, row in enumerate(rows):
        first = index.sentence_rows[row]
        expected = index.sentence_matrix[first : first + len(index.passages[row].sentences)]
        assert np.array_equal(vectors[offsets[number] : offsets[number + 1]], expected)


def test_bm25_top_reads_postings_and_agrees_with_scoring_every_passage(synthetic):
    query_terms = terms("Quelle est la longueur de la frontière entre la Russie et le Kazakhstan ?")
    every = synthetic.lexical.model.get_scores([t for t in query_terms if synthetic.lexical.document_frequency(t)])
    rows, scores = synthetic.lexical_search(query_terms, 50)
    assert np.allclose(scores, np.sort(every)[::-1][:50], rtol=1e-5)
    assert np.allclose(every[rows], scores, rtol=1e-5)
    allowed = np.arange(0, 3000, 2)
    rows, scores = synthetic.lexical.top(query_terms, 10, allowed)
    assert set(rows) <= set(allowed) and np.allclose(scores, np.sort(every[allowed])[::-1][:10], rtol=1e-5)


@pytest.mark.parametrize("question", [q["question"] for q in dev_questions()][:12] + ["Russie Russie Kazakhstan frontière"])
def test_bm25_threshold_top_finds_the_exact_top_reading_postings_by_weight(synthetic, monkeypatch, question):
    """Forced onto every query: the threshold algorithm returns the exhaustive top (same
    scores; the same passages, but for ties at the last place)."""
    monkeypatch.setattr("qa.store.lexical.EXHAUSTIVE_POSTINGS", 0)
    query_terms = terms(question)
    every = synthetic.lexical.model.get_scores(query_terms_known := [t for t in query_terms if synthetic.lexical.document_frequency(t)])
    if not query_terms_known:
        return
    rows, scores = synthetic.lexical_search(query_terms, 20)
    expected = np.sort(every[every > 0])[::-1][:20]
    assert np.allclose(scores, expected, rtol=1e-5)
    assert np.allclose(every[rows], scores, rtol=1e-5)
    assert set(np.flatnonzero(every > expected[-1] * (1 + 1e-5))) <= set(rows)


def test_the_lexical_index_saves_each_term_s_postings_by_weight(synthetic):
    saved = np.load(synthetic.folder / "lexical" / "impact_order.npy")
    matrix = synthetic.lexical.model.scores
    for term in range(0, len(matrix["indptr"]) - 1, 37):
        start, end = matrix["indptr"][term], matrix["indptr"][term + 1]
        weights = matrix["data"][start:end][saved[start:end]]
        assert np.all(np.diff(weights) <= 0) and sorted(saved[start:end]) == list(range(end - start))
