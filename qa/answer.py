"""Answers: the retrieved passages, the sentence that answers, and its footnotes resolved.

Nothing is generated: the answer is a sentence of the corpus, inside its passage, with the
references its footnote markers point to. When the best match is too weak, the answer says so
(in the question's language) and the passages are offered as possibly useful.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qa.lexical import terms
from qa.passages import Passage
from qa.retrieve import Hit, Retrieval, Retriever
from qa.text import footnotes_in, question_language

# Calibrated on dev.jsonl (see README): below this fused score the corpus is taken not to answer.
ANSWER_THRESHOLD = 0.80
# How much a sentence's own match counts against its passage's rank when choosing the answer.
SENTENCE_LEXICAL_WEIGHT = 0.1
# The answering sentence is looked for in this many of the best passages.
SENTENCE_CANDIDATES = 3
NO_ANSWER = {
    "fr": "Je n'ai pas trouvé de réponse dans le corpus.",
    "en": "I found no answer in the corpus.",
}


class QuestionError(ValueError):
    """The question cannot be asked as it is (empty, too long); the message says why."""


@dataclass(frozen=True)
class Footnote:
    number: int
    reference: str | None  # None when the article has no such reference


@dataclass(frozen=True)
class AnswerPassage:
    passage: Passage
    rank: int
    score: float
    sentence: tuple[int, int] | None  # the answering sentence's span in passage.text, if here
    footnotes: tuple[Footnote, ...]  # every footnote the passage cites


@dataclass(frozen=True)
class Answer:
    question: str
    language: str  # "fr" or "en": the language of the question, used for messages
    answered: bool
    answer_sentence: str | None
    answer_footnotes: tuple[Footnote, ...]  # the footnotes of the answering sentence
    passages: tuple[AnswerPassage, ...]

    @property
    def message(self) -> str | None:
        """What to say instead of an answer when the corpus does not answer."""
        return None if self.answered else NO_ANSWER[self.language]


def check_question(question: str, max_chars: int) -> str:
    """The question stripped, or QuestionError when it is empty or too long."""
    cleaned = " ".join(question.split())
    if not cleaned:
        raise QuestionError("the question is empty")
    if len(cleaned) > max_chars:
        raise QuestionError(f"the question is {len(cleaned)} characters long; the limit is {max_chars}")
    return cleaned


def answer_question(question: str, retriever: Retriever, k: int, max_chars: int = 1000) -> Answer:
    """Retrieve k passages and pick the sentence that answers among them."""
    question = check_question(question, max_chars)
    retrieval = retriever.search(question, k)
    if not retrieval.hits:
        return Answer(question, question_language(question), False, None, (), ())
    best_hit, span = _answering_sentence(retrieval, retriever)
    ordered = [best_hit] + [h for h in retrieval.hits if h is not best_hit]
    index = retriever.index
    passages = tuple(
        AnswerPassage(
            passage=hit.passage,
            rank=rank,
            score=hit.score,
            sentence=span if hit is best_hit else None,
            footnotes=tuple(Footnote(n, index.reference(hit.passage.doc_id, n)) for n in hit.passage.footnotes),
        )
        for rank, hit in enumerate(ordered, start=1)
    )
    answered = retrieval.hits[0].score >= ANSWER_THRESHOLD
    sentence = best_hit.passage.text[span[0] : span[1]]
    backing = set(footnotes_backing(best_hit.passage, span))
    sentence_footnotes = tuple(f for f in passages[0].footnotes if f.number in backing)
    return Answer(question, question_language(question), answered, sentence, sentence_footnotes, passages)


def footnotes_backing(passage: Passage, span: tuple[int, int]) -> tuple[int, ...]:
    """The footnotes that back a sentence: its own markers, or, as on Wikipedia where a marker
    at the end of a run of sentences covers them all, those of the next sentence that has some."""
    if passage.kind == "reference":
        return passage.footnotes
    following = [s for s in passage.sentences if s[0] >= span[0]]
    for start, end in following:
        found = footnotes_in(passage.text[start:end])
        if found:
            return found
    return ()


def _answering_sentence(retrieval: Retrieval, retriever: Retriever) -> tuple[Hit, tuple[int, int]]:
    """The (passage, sentence) pair that best answers: the sentence's own similarity to the
    question and its share of the question's terms, on top of its passage's score."""
    wanted = set(retrieval.query_terms)
    best: tuple[float, Hit, tuple[int, int]] | None = None
    for hit in retrieval.hits[:SENTENCE_CANDIDATES]:
        similarities = retriever.index.sentence_embeddings(hit.position) @ retrieval.query_vector
        for span, similarity in zip(hit.passage.sentences, np.atleast_1d(similarities)):
            sentence_terms = set(terms(hit.passage.text[span[0] : span[1]]))
            overlap = len(wanted & sentence_terms) / len(wanted) if wanted else 0.0
            score = hit.score + float(similarity) + SENTENCE_LEXICAL_WEIGHT * retrieval.term_coverage * overlap
            if best is None or score > best[0]:
                best = (score, hit, span)
    return best[1], best[2]
