"""Asking the article: cited answers from the engine and from the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import BAIKONOUR_QUESTION, ROOT, dev_questions, small_corpus
from qa.answer.question import QuestionError
from qa.tools.cli import main
from qa.ingest.text import squash_spaces

ANSWERABLE = [q for q in dev_questions() if q["answer"]]


@pytest.mark.parametrize("case", ANSWERABLE, ids=[q["id"] for q in ANSWERABLE])
def test_a_passage_with_the_answer_is_in_the_top_3_and_cites_the_expected_footnotes(engine, case):
    answer = engine.ask(case["question"], k=3)
    holding = [p for p in answer.passages if squash_spaces(case["answer"]) in squash_spaces(p.passage.text)]
    assert holding, [p.passage.text[:80] for p in answer.passages]
    assert set(case["footnotes"]) <= {f.number for f in holding[0].footnotes}


def test_asking_about_the_troops_highlights_the_sentence_and_cites_le_point(engine):
    answer = engine.ask("Combien de soldats la Russie a-t-elle déployés en janvier 2022 ?")
    assert answer.answered
    assert "2000 soldats" in answer.answer_sentence
    first = answer.passages[0]
    a, b = first.sentence
    assert first.passage.text[a:b] == answer.answer_sentence
    assert first.passage.section == "Manifestations de 2022 au Kazakhstan"
    notes = {f.number: f.reference for f in first.footnotes}
    assert "Le Kazakhstan en proie aux émeutes" in notes[3] and "Le Point" in notes[3]


def test_a_question_about_a_source_finds_the_reference_entry(engine):
    answer = engine.ask("Quel journal a publié l'article de Claude Moniquet ?")
    assert answer.passages[0].passage.kind == "reference"
    assert "Marianne" in answer.answer_sentence
    assert [f.number for f in answer.answer_footnotes] == [1]


def test_asking_in_english_finds_the_french_passage(engine):
    answer = engine.ask("How long is the border between Kazakhstan and Russia?")
    assert "6 846 km" in squash_spaces(answer.passages[0].passage.text)


@pytest.mark.parametrize("question", ["", "   \n ", "x" * 5000])
def test_empty_or_huge_questions_are_refused_with_a_reason(engine, question):
    with pytest.raises(QuestionError, match="empty|limit"):
        engine.ask(question)


def test_the_command_line_answers_several_questions_as_json_lines(index_dir, capsys):
    assert main(["--index", str(index_dir), "ask", "--json", "-k", "2", "Quelle est la capitale kazakhe ?", "Why was Kazakh oil renamed?"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["question"] for line in lines] == ["Quelle est la capitale kazakhe ?", "Why was Kazakh oil renamed?"]
    for line in lines:
        assert {"question", "answered", "answer_sentence", "passages"} <= line.keys()
        assert [p["rank"] for p in line["passages"]] == [1, 2]
        for passage in line["passages"]:
            assert {"id", "rank", "score", "section", "text", "footnotes"} <= passage.keys()
            assert all({"n", "reference"} <= f.keys() for f in passage["footnotes"])
    assert "Astana" in lines[0]["answer_sentence"]
    assert "KEBCO" in lines[1]["passages"][0]["text"]


def test_a_first_ask_builds_the_missing_index_saying_so_then_answers(tmp_path):
    settings = small_corpus(tmp_path)  # built from scratch: the corpus of one paragraph, which takes a moment
    first = subprocess.run([sys.executable, "-m", "qa", "--corpus", str(settings.corpus), "--index", str(settings.index), "ask", BAIKONOUR_QUESTION],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    assert "no index yet" in first.stderr and "(first use)" in first.stderr and "embedding" in first.stderr
    assert first.stdout.startswith(f"Q: {BAIKONOUR_QUESTION}") and "2050" in first.stdout and (settings.index / "CURRENT").is_file()


def test_the_command_line_explains_an_empty_question(index_dir, capsys):
    assert main(["--index", str(index_dir), "ask", "  "]) == 1
    assert "the question is empty" in capsys.readouterr().err
