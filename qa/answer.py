"""Answers: the retrieved passages, the sentence that answers, and its footnotes resolved.

Nothing is generated: the answer is a sentence of the best passage, with the references its
footnote markers point to. When the best match is too weak, or the sentence lacks what the
question asks for (a year, a date, a number), the answer says so in the question's language and
the passages are offered as possibly useful.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa.lexical import terms
from qa.passages import CITING, Passage
from qa.question_types import fits_expected_type
from qa.retrieve import Hit, Retrieval, Retriever
from qa.store import Articles, PassageStore, reference_text
from qa.text import footnotes_in, question_language

# Calibrated on dev.jsonl (see README): below this fused score the corpus is taken not to answer.
ANSWER_THRESHOLD = 0.80
# Weight of the share of the question's terms a sentence carries, against its cosine.
SENTENCE_LEXICAL_WEIGHT = 0.1
# Share of a question's terms known to the corpus above which it is taken to be in its language.
SAME_LANGUAGE_COVERAGE = 0.5
# A capitalised word that does not start the question, or an acronym: a name.
_NAME = re.compile(r"(?<!^)\b[A-ZÀ-Ý][\w'’-]*")
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


def answer_question(question: str, retriever: Retriever, k: int, max_chars: int = 1000, articles: Articles = None) -> Answer:
    """Retrieve k passages; the answer is the best sentence of the first one."""
    question = check_question(question, max_chars)
    language = question_language(question)
    retrieval = retriever.search(question, k, articles)
    if not retrieval.hits:
        return Answer(question, language, False, None, (), ())
    top = retrieval.hits[0]
    span = answering_sentence(top, retrieval)
    sentence = top.passage.text[span[0] : span[1]]
    store = retriever.store
    passages = tuple(
        AnswerPassage(
            passage=hit.passage,
            rank=rank,
            score=hit.score,
            sentence=span if hit is top else None,
            footnotes=tuple(Footnote(n, reference_text(store, hit.passage.doc_id, n)) for n in hit.passage.footnotes),
        )
        for rank, hit in enumerate(retrieval.hits, start=1)
    )
    backing = set(footnotes_backing(top.passage, span))
    sentence_footnotes = tuple(f for f in passages[0].footnotes if f.number in backing)
    answered = (
        top.score >= ANSWER_THRESHOLD
        and fits_expected_type(question, sentence)
        and not unknown_names(question, retrieval, store)
    )
    return Answer(question, language, answered, sentence, sentence_footnotes, passages)


def unknown_names(question: str, retrieval: Retrieval, store: PassageStore) -> list[str]:
    """Names in a question in the corpus's language (most of its terms known) that the corpus
    never mentions: "le PIB", "la Mongolie". The corpus cannot answer about what it never names.
    Questions in another language are left out: their names are spelt otherwise (Putin, Poutine)."""
    if retrieval.term_coverage < SAME_LANGUAGE_COVERAGE:
        return []
    names = _NAME.findall(question.strip())
    return [name for name in names if (found := terms(name)) and not store.known_terms(found)]


def footnotes_backing(passage: Passage, span: tuple[int, int]) -> tuple[int, ...]:
    """The footnotes that back a sentence: its own markers, or, as on Wikipedia where a marker
    at the end of a run of sentences covers them all, those of the next sentence that has some."""
    if passage.kind not in CITING:  # a reference, or the text of a source: cited as itself
        return passage.footnotes
    following = [s for s in passage.sentences if s[0] >= span[0]]
    for start, end in following:
        found = footnotes_in(passage.text[start:end])
        if found:
            return found
    return ()


def answering_sentence(hit: Hit, retrieval: Retrieval) -> tuple[int, int]:
    """The sentence of the passage that best answers: among those that hold what the question
    asks for (if any do), the one most similar to the question, plus its share of the
    question's terms (weighted by how well the corpus knows those terms)."""
    wanted = set(retrieval.query_terms)

    def score(item: tuple[tuple[int, int], float]) -> float:
        (start, end), similarity = item
        overlap = len(wanted & set(terms(hit.passage.text[start:end]))) / len(wanted) if wanted else 0.0
        return float(similarity) + SENTENCE_LEXICAL_WEIGHT * retrieval.term_coverage * overlap

    candidates = list(zip(hit.passage.sentences, hit.sentence_cosines))
    typed = [c for c in candidates if fits_expected_type(retrieval.question, hit.passage.text[c[0][0] : c[0][1]])]
    return max(typed or candidates, key=score)[0]
