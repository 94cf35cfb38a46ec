"""One question → one Answer, as the list of its stages:

retrieve → candidates → read (with a reader) → choose → judge → compose.

Each stage takes the typed output of those before it and calls none of them. Nothing is
generated: the answer is a sentence of one of the top passages with the short answer the reader
found inside it and the references its footnote markers point to.
"""

from __future__ import annotations

from dataclasses import dataclass

from qa.answer.candidates import DEPTH, find_candidates
from qa.answer.choose import Choice, choose
from qa.answer.compose import compose, nothing_found
from qa.answer.judge import Calibration, judge
from qa.answer.question import Question, read_question
from qa.answer.ranking import SentenceModel
from qa.answer.reader import Reader
from qa.answer.reading import read
from qa.answer.result import Answer
from qa.answer.retrieve import Retrieval, Retriever
from qa.store.contract import Articles

# Extra passages retrieved so that grouping the same fact still leaves k distinct ones.
GROUPING_SLACK = 3


@dataclass(frozen=True)
class AnswerModels:
    """The trained models answering uses (loaded by ``qa.engine``)."""

    sentence: SentenceModel  # ranks the candidate sentences: where the reader reads (qa/models/sentence_model.json)
    reader: Reader | None = None  # None: QA_READER=none
    calibration: Calibration | None = None  # with the reader: its answerability → confidence, and the threshold
    read_windows: int = 3  # windows the reader reads per question


def choice_for(question: Question, retriever: Retriever, models: AnswerModels, depth: int,
               articles: Articles = None) -> tuple[Retrieval, Choice] | None:
    """The stages before the judge: the passages found and the answer chosen among them (None: no
    passage found)."""
    retrieval = retriever.search(question.query, max(depth, DEPTH), articles)
    if not retrieval.hits:
        return None
    found = find_candidates(retrieval, models.sentence)
    spans = read(models.reader, retrieval, found, models.read_windows) if models.reader else None
    return retrieval, choose(found, spans)


def answer_question(
    question: str, retriever: Retriever, models: AnswerModels, k: int, max_chars: int = 1000, articles: Articles = None,
) -> Answer:
    """The answer to a question from the k best passages (of the given articles only, if any)."""
    asked = read_question(question, max_chars)
    chosen = choice_for(asked, retriever, models, k + GROUPING_SLACK, articles)
    if chosen is None:
        return nothing_found(asked)
    retrieval, choice = chosen
    verdict = judge(asked, choice, retrieval, models.calibration, retriever.store)
    return compose(asked, retrieval, choice, verdict, retriever.store, k)
