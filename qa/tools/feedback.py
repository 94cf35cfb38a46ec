"""Feedback on answers: 👍/👎 votes kept in a local JSON-lines file, and the evaluation cases they make.

One line per vote: question, language, whether the app answered, the answer sentence, the ids of
the passages shown, the vote ("up" or "down") and the time (ISO 8601, UTC). The file is
``feedback.jsonl`` in the project folder (installed: in the user's data folder) unless the
environment variable QA_FEEDBACK names another.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from qa.answer.result import Answer
from qa.locations import DEFAULT_LOCATIONS

VOTES = ("up", "down")


def feedback_path() -> Path:
    """Where votes are written: $QA_FEEDBACK, or feedback.jsonl where citeqa keeps its files (qa/locations.py)."""
    return Path(os.environ.get("QA_FEEDBACK") or DEFAULT_LOCATIONS.feedback).expanduser()


def vote_record(answer: Answer, vote: str) -> dict:
    """The line written for a vote on an answer."""
    if vote not in VOTES:
        raise ValueError(f"a vote is one of {VOTES}, not {vote!r}")
    return {
        "question": answer.question,
        "lang": answer.language,
        "answered": answer.answered,
        "answer_sentence": answer.answer_sentence,
        "passage_ids": [item.passage.id for item in answer.passages],
        "vote": vote,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def record_vote(answer: Answer, vote: str, path: Path | None = None) -> dict:
    """Append a vote on ``answer`` to the feedback file (created if needed); the line written."""
    record = vote_record(answer, vote)
    path = path or feedback_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return record


def read_votes(path: Path) -> list[dict]:
    """The votes of a feedback file, oldest first; none when it does not exist."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def cases_from_feedback(path: Path) -> list[dict]:
    """Evaluation cases, shaped like the lines of eval/dev.jsonl, from the 👍 votes of a feedback file.

    Only the latest vote on each question counts. A 👍 on an answer makes a case whose answer is
    the answer sentence; a 👍 on an abstention approves it, so its case expects no answer (null),
    as dev.jsonl writes questions the corpus does not answer. 👎 votes are skipped: they say the
    answer is wrong, not what the right one is, so they are for a person to read, not to replay.
    """
    latest = {vote["question"]: vote for vote in read_votes(path)}
    return [
        {
            "question": vote["question"],
            "answer": vote["answer_sentence"] if vote["answered"] else None,
            "footnotes": [],
            "lang": vote["lang"],
            "kind": "feedback",
        }
        for vote in latest.values()
        if vote["vote"] == "up"
    ]
