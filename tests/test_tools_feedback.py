"""Tests of qa.tools.feedback: votes on real answers, written to a JSON-lines file, and the cases they make."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from conftest import ROOT, run_command
from qa.tools.evaluate import read_cases
from qa.tools.feedback import cases_from_feedback, feedback_path, read_votes, record_vote

SOLDIERS = "Combien de soldats la Russie a-t-elle déployés en janvier 2022 ?"
WORLD_CUP = "Who won the 2018 football World Cup?"
BORDER = "How long is the border between Kazakhstan and Russia?"


def test_feedback_file_is_in_the_project_root_unless_qa_feedback_says_otherwise(tmp_path, monkeypatch):
    monkeypatch.delenv("QA_FEEDBACK", raising=False)
    assert feedback_path() == ROOT / "feedback.jsonl"
    assert "feedback.jsonl" in (ROOT / ".gitignore").read_text("utf-8").splitlines()
    monkeypatch.setenv("QA_FEEDBACK", str(tmp_path / "votes.jsonl"))
    assert feedback_path() == tmp_path / "votes.jsonl"


def test_a_vote_is_appended_with_the_question_passages_sentence_and_time(engine, tmp_path, monkeypatch):
    path = tmp_path / "sub" / "votes.jsonl"
    monkeypatch.setenv("QA_FEEDBACK", str(path))
    answer = engine.ask(SOLDIERS)
    record_vote(answer, "up")
    record_vote(engine.ask(WORLD_CUP), "down")
    first, second = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert first["question"] == SOLDIERS and first["vote"] == "up" and first["lang"] == "fr"
    assert first["answered"] is True and first["answer_sentence"] == answer.answer_sentence
    assert first["passage_ids"] == [item.passage.id for item in answer.passages]
    assert datetime.fromisoformat(first["time"]).tzinfo is not None
    assert (second["question"], second["vote"], second["answered"], second["lang"]) == (WORLD_CUP, "down", False, "en")


def test_a_vote_is_up_or_down(engine, tmp_path):
    with pytest.raises(ValueError, match="up"):
        record_vote(engine.ask(SOLDIERS), "meh", tmp_path / "votes.jsonl")
    assert not (tmp_path / "votes.jsonl").exists()


def test_approved_answers_and_abstentions_become_cases_and_disputed_ones_do_not(engine, tmp_path):
    path = tmp_path / "votes.jsonl"
    soldiers = engine.ask(SOLDIERS)
    record_vote(soldiers, "up", path)
    record_vote(engine.ask(WORLD_CUP), "up", path)  # the abstention was right
    record_vote(engine.ask(BORDER), "up", path)
    record_vote(engine.ask(BORDER), "down", path)  # changed their mind: the latest vote counts
    assert len(read_votes(path)) == 4
    cases = cases_from_feedback(path)
    assert cases == [
        {"question": SOLDIERS, "answer": soldiers.answer_sentence, "footnotes": [], "lang": "fr", "kind": "feedback"},
        {"question": WORLD_CUP, "answer": None, "footnotes": [], "lang": "en", "kind": "feedback"},
    ]
    # The cases read as an evaluation file, like eval/dev.jsonl.
    evaluation = tmp_path / "feedback-cases.jsonl"
    evaluation.write_text("".join(json.dumps(case, ensure_ascii=False) + "\n" for case in cases), "utf-8")
    assert [(c.question, c.answer, c.kind) for c in read_cases(evaluation)] == [
        (SOLDIERS, soldiers.answer_sentence, "feedback"),
        (WORLD_CUP, None, "feedback"),
    ]


def test_no_feedback_file_means_no_cases(tmp_path):
    assert cases_from_feedback(tmp_path / "missing.jsonl") == []


def test_qa_eval_replays_the_approved_answers_of_a_feedback_file(engine, index_dir, tmp_path, capsys):
    path = tmp_path / "votes.jsonl"
    for question, vote in ((SOLDIERS, "up"), (BORDER, "up"), (WORLD_CUP, "up"), (WORLD_CUP, "down")):
        record_vote(engine.ask(question), vote, path)
    status, out, err = run_command(capsys, "--index", index_dir, "eval", path, "--from-feedback", "--json")
    assert status == 0, err
    report = json.loads(out)
    assert report["overall"]["questions"] == 2  # the World Cup vote was changed to 👎: skipped
    assert report["overall"]["recall@1"] == 1.0 and report["overall"]["sentence_has_answer"] == 1.0
