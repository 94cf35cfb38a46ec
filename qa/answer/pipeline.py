"""One question → one Answer, as the list of its stages:

understand (after the conversation's earlier turns) → retrieve → candidates → read (with a reader)
→ choose → judge → compose (→ explain, when asked).

Each stage takes the typed output of those before it and calls none of them. Nothing is
generated: the answer is a sentence of one of the top passages with the short answer the reader
found inside it and the references its footnote markers point to.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Sequence

from qa.answer.candidates import DEPTH, find_candidates
from qa.answer.choose import choose
from qa.answer.compose import compose, nothing_found
from qa.answer.conversation import CarryModel, Turn, understand
from qa.answer.explain import explain_matches
from qa.answer.judge import ConfidenceModel, judge
from qa.answer.question import Question, read_question
from qa.answer.sources import source_question
from qa.answer.ranking import SentenceModel
from qa.answer.reader import Reader
from qa.answer.reading import read
from qa.answer.result import Answer
from qa.answer.retrieve import Retriever
from qa.store.contract import Articles

# Extra passages retrieved so that grouping the same fact still leaves k distinct ones.
GROUPING_SLACK = 3


@dataclass(frozen=True)
class AnswerModels:
    """The trained models answering uses (loaded by ``qa.engine``)."""

    sentence: SentenceModel  # ranks the candidate sentences (qa/models/sentence_model.json)
    carry: CarryModel  # which earlier words a follow-up carries (qa/models/carry_model.json)
    reader: Reader | None = None  # None: QA_READER=none
    choice: SentenceModel | None = None  # with the reader: the choice over its signals too
    confidence: ConfidenceModel | None = None  # with the reader: whether to answer and how surely
    read_windows: int = 3  # windows the reader reads per question


def answer_question(
    question: str, retriever: Retriever, models: AnswerModels, k: int, max_chars: int = 1000, articles: Articles = None,
    history: Sequence[Turn] = (), explain: bool = False,
) -> Answer:
    """The answer to a question from the k best passages (of the given articles only, if any),
    read after the conversation's earlier turns (oldest first), if any; with ``explain``, why
    each passage was shown."""
    typed = read_question(question, max_chars)
    understood = understand(typed.text, history, models.carry)
    asked = Question(understood.text, typed.language, source_question(understood.text)) if understood.completed else typed
    retrieval = retriever.search(asked.query, max(k, DEPTH) + GROUPING_SLACK, articles)
    if not retrieval.hits:
        return replace(nothing_found(asked), question=typed.text, understood_as=understood.text)
    found = find_candidates(retrieval, models.sentence)
    readings = read(models.reader, retrieval, found, models.read_windows) if models.reader else None
    choice = choose(found, readings, models.choice)
    verdict = judge(asked, choice, retrieval, models.confidence, retriever.store)
    answer = compose(asked, retrieval, choice, verdict, retriever.store, k)
    explanations = explain_matches([p.passage for p in answer.passages], retrieval, found, readings) if explain else ()
    return replace(answer, question=typed.text, understood_as=understood.text, explanations=explanations)
