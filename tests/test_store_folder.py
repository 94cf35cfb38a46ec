"""The index folder: a build → load round trip, and clear refusals of stale, foreign or broken indexes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from conftest import BAIKONOUR_QUESTION, CORPUS_FILE, small_corpus
from qa.config import Settings
from qa.engine import build, open_engine
from qa.store.folder import current_build, load_index
from qa.store.contract import IncompatibleIndexError, IndexUnusableError, MissingIndexError, check_compatible, reference_text, stale_reasons


def test_a_built_index_loads_back_with_its_manifest(index_dir, engine):
    index = load_index(index_dir)
    manifest = index.manifest
    assert manifest.model == Settings().model
    assert manifest.dimension == 384
    assert manifest.chunk_size == Settings().chunk_size
    assert manifest.corpus_files == {CORPUS_FILE.name: hashlib.sha256(CORPUS_FILE.read_bytes()).hexdigest()}
    assert manifest.passages == len(index.passages) == index.vectors.ntotal
    assert [p.id for p in index.passages] == [p.id for p in engine.store.passages]
    assert reference_text(index, "relations-kazakhstan-russie", 3).endswith("Le Point, (lire en ligne)")
    vectors, offsets = index.sentence_vectors(np.array([0]))
    assert len(vectors) == offsets[-1] == len(index.passages[0].sentences)
    assert sorted(f.name for f in current_build(index_dir).iterdir()) == [
        "lexical", "manifest.json", "passages.json", "sentences.npy", "vectors.faiss"
    ]


def test_an_index_knows_when_the_corpus_changed(private_corpus):
    index = load_index(private_corpus.index)
    assert stale_reasons(index.manifest, private_corpus) == []
    article = private_corpus.corpus / CORPUS_FILE.name
    article.write_text(article.read_text("utf-8").replace("6 846", "6 847"), "utf-8")
    (private_corpus.corpus / "autre.md").write_text("# Autre\n\nUn paragraphe.\n", "utf-8")
    assert stale_reasons(index.manifest, private_corpus) == [f"{CORPUS_FILE.name} changed", "autre.md added"]


def test_an_index_of_another_model_is_refused(engine):
    with pytest.raises(IncompatibleIndexError, match="rebuild"):
        check_compatible(engine.store, Settings(model="some/other-model"), 384)
    with pytest.raises(IncompatibleIndexError, match="768"):
        check_compatible(engine.store, Settings(), 768)


def test_no_index_says_how_to_build_one(tmp_path, embedder):
    with pytest.raises(MissingIndexError, match="python -m qa build"):
        open_engine(Settings.from_env(index=tmp_path), embedder)


@pytest.mark.parametrize("damaged", ["vectors.faiss", "passages.json", "manifest.json", "sentences.npy"])
def test_a_corrupted_index_file_gives_a_clear_error(private_corpus, damaged):
    path = current_build(private_corpus.index) / damaged
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(IndexUnusableError, match="rebuild"):
        load_index(private_corpus.index)


def test_a_build_that_fails_half_way_leaves_the_old_index_in_use(tmp_path, embedder):
    settings = small_corpus(tmp_path)  # the failing build embeds from scratch: a corpus that takes a moment
    build(settings, embedder)
    before = current_build(settings.index)

    class FailingAfterFirstBatch:
        """The real model, made to fail after its first batch (a crash mid-build)."""

        calls = 0

        def __getattr__(self, name):
            return getattr(embedder, name)

        def encode(self, *args, **kwargs):
            self.calls += 1
            if self.calls > 1:
                raise RuntimeError("simulated crash")
            return embedder.encode(*args, **kwargs)

    failing = FailingAfterFirstBatch()
    with pytest.raises(RuntimeError, match="simulated crash"):
        build(settings, failing, full=True)
    assert failing.calls == 2  # the passages embedded, then the crash
    assert current_build(settings.index) == before
    assert "2050" in open_engine(settings, embedder).ask(BAIKONOUR_QUESTION).answer_sentence
    assert [p.name for p in settings.index.iterdir() if p.name.startswith((".build-", ".CURRENT."))] == []


def test_passages_come_back_from_disk_exactly_as_they_were_split(private_corpus):
    """passages.json stores them in columns (since format 2); every field of every passage survives."""
    from qa.ingest.corpus import read_corpus
    from qa.ingest.passages import passages_for

    settings = private_corpus
    split = [p for d in read_corpus(settings.corpus).documents for p in passages_for(d, settings.chunk_size, settings.chunk_overlap)]
    assert load_index(settings.index).passages == split


def test_an_index_written_in_the_previous_format_says_to_rebuild_and_a_build_replaces_it(tmp_path, embedder):
    import json

    from qa.store.folder import index_status

    settings = small_corpus(tmp_path)  # everything is embedded again: a corpus that takes a moment
    build(settings, embedder)
    manifest_path = current_build(settings.index) / "manifest.json"
    manifest = json.loads(manifest_path.read_text("utf-8"))
    manifest_path.write_text(json.dumps({**manifest, "format_version": 2}), "utf-8")
    with pytest.raises(IncompatibleIndexError, match="format 2, not 3.*python -m qa build"):
        load_index(settings.index)
    assert "format 2" in index_status(settings).problem
    report = build(settings, embedder)
    assert (report.reused, report.embedded) == (0, 2)  # the old build's vectors are not trusted: everything is embedded again
    assert load_index(settings.index).manifest.format_version == 3
