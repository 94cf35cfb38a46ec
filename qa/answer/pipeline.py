"""Answers: the retrieved passages, the sentence that answers, and its footnotes resolved.

Nothing is generated: the answer is a sentence of one of the top passages, chosen by the
sentence model and the reader (qa.answer.choose), with the short answer the reader found inside it and
the references its footnote markers point to; its passage is shown first. The same fact found
in several articles (the same sentence, up to a few words) is shown once, with every source.
When the confidence models (qa.answer.judge) judge that the corpus does not answer, the answer
says so in the question's language and the passages are offered as possibly useful.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from qa.store.lexical import terms
from qa.ingest.passages import Passage
from qa.answer.question_types import fits_expected_type
from qa.answer.retrieve import Hit, Retrieval, Retriever
from qa.answer.choose import Choice, Chooser
from qa.answer.judge import SIGNALS, ConfidenceModel
from qa.answer.candidates import DEPTH
from qa.answer.sources import source_answer, source_question
from qa.store.contract import Articles, PassageStore, reference_text
from qa.ingest.text import question_language

# Without a reader (QA_READER=none), calibrated on dev.jsonl: below this fused score the corpus is taken not to answer.
ANSWER_THRESHOLD = 0.80
# Extra passages retrieved so that grouping the same fact still leaves k distinct ones.
GROUPING_SLACK = 3
# Share of their terms (Jaccard) above which two sentences of different articles say the same.
SAME_FACT_OVERLAP = 0.8
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
class Source:
    """A passage that says the answer's fact, with the sentence that says it and its footnotes."""

    passage: Passage
    sentence: tuple[int, int]
    footnotes: tuple[Footnote, ...]  # the footnotes backing that sentence


@dataclass(frozen=True)
class AnswerPassage:
    passage: Passage
    rank: int
    score: float
    sentence: tuple[int, int] | None  # the answering sentence's span in passage.text, if here
    footnotes: tuple[Footnote, ...]  # every footnote the passage cites
    same_fact: tuple[Source, ...] = ()  # passages of other articles saying the same, not shown twice
    answer: tuple[int, int] | None = None  # the short answer's span in passage.text, if here


@dataclass(frozen=True)
class Answer:
    question: str
    language: str  # "fr" or "en": the language of the question, used for messages
    answered: bool
    answer_sentence: str | None
    answer_footnotes: tuple[Footnote, ...]  # the footnotes of the answering sentence
    passages: tuple[AnswerPassage, ...]
    # The short answer: the reader's span in the answering sentence (passages[0].answer), or for a
    # question asking for a source, the text of the references backing it; None without either.
    answer_text: str | None = None
    confidence: float | None = None  # the probability that the answering sentence is right (None: no reader)
    asks_source: bool = False  # the question asks which source says a fact
    signals: tuple[float, ...] = ()  # what the confidence models read (qa.confidence.SIGNALS)

    @property
    def message(self) -> str | None:
        """What to say instead of an answer when the corpus does not answer."""
        return None if self.answered else NO_ANSWER[self.language]

    @property
    def sources(self) -> tuple[Source, ...]:
        """Every passage that says the answering sentence: the first passage, then the others."""
        if not self.passages or self.passages[0].sentence is None:
            return ()
        first = self.passages[0]
        return (Source(first.passage, first.sentence, self.answer_footnotes), *first.same_fact)


def check_question(question: str, max_chars: int) -> str:
    """The question stripped, or QuestionError when it is empty or too long."""
    cleaned = " ".join(question.split())
    if not cleaned:
        raise QuestionError("the question is empty")
    if len(cleaned) > max_chars:
        raise QuestionError(f"the question is {len(cleaned)} characters long; the limit is {max_chars}")
    return cleaned


def answer_question(
    question: str, retriever: Retriever, chooser: Chooser, judge: ConfidenceModel | None, k: int, max_chars: int = 1000,
    articles: Articles = None,
) -> Answer:
    """Retrieve the top passages, choose the answering sentence among theirs and its short answer
    (for a question asking which source says a fact: the references backing the sentence that
    states it), judge whether the corpus answers and how surely, and show the sentence's passage
    first, then the others, each fact once."""
    question = check_question(question, max_chars)
    language = question_language(question)
    asked_source = source_question(question)
    query = asked_source.fact if asked_source else question
    retrieval = retriever.search(query, max(k, DEPTH) + GROUPING_SLACK, articles)
    if not retrieval.hits:
        return Answer(question, language, False, None, (), ())
    chosen = chooser.choose(retrieval)
    top = retrieval.hits[chosen.hit]
    sentence = top.passage.text[chosen.span[0] : chosen.span[1]]
    store = retriever.store
    ordered = [top, *(h for h in retrieval.hits if h is not top)]
    groups = group_same_facts(ordered, chosen.span)
    footnotes = sentence_footnotes(store, top.passage, chosen.span)
    short_span = None if asked_source else chosen.answer
    passages = tuple(
        AnswerPassage(
            passage=hit.passage,
            rank=rank,
            score=hit.score,
            sentence=chosen.span if hit is top else None,
            footnotes=passage_footnotes(store, hit.passage),
            same_fact=tuple(
                Source(other.passage, span, sentence_footnotes(store, other.passage, span)) for other, span in others
            ),
            answer=short_span if hit is top else None,
        )
        for rank, (hit, others) in enumerate(groups[:k], start=1)
    )
    unknown = unknown_names(question, retrieval, store)
    signals = answer_signals(chosen, retrieval, unknown)
    if judge is None:  # no reader: the rule of the sentence model alone
        answered, confidence = top.score >= ANSWER_THRESHOLD and fits_expected_type(question, sentence) and not unknown, None
    else:
        answered, confidence = judge.judge(signals)
    if asked_source:
        text = source_answer([f.reference for f in footnotes if f.reference]) or None
        answered = answered and text is not None
    else:
        text = None if short_span is None else top.passage.text[short_span[0] : short_span[1]]
    return Answer(question, language, answered, sentence, footnotes, passages, text, confidence, asked_source is not None, tuple(signals))


def answer_signals(chosen: Choice, retrieval: Retrieval, unknown: list[str]) -> np.ndarray:
    """The signals the confidence models read (qa.confidence.SIGNALS), in order."""
    values = {**chosen.signals, "certainty": chosen.certainty, "term_coverage": retrieval.term_coverage,
              "unknown_names": float(bool(unknown))}
    return np.array([values.get(name, 0.0) for name in SIGNALS])


def passage_footnotes(store: PassageStore, passage: Passage) -> tuple[Footnote, ...]:
    return tuple(Footnote(n, reference_text(store, passage.doc_id, n)) for n in passage.footnotes)


def sentence_footnotes(store: PassageStore, passage: Passage, span: tuple[int, int]) -> tuple[Footnote, ...]:
    return tuple(Footnote(n, reference_text(store, passage.doc_id, n)) for n in footnotes_backing(passage, span))


def group_same_facts(hits: list[Hit], first_span: tuple[int, int]) -> list[tuple[Hit, list[tuple[Hit, tuple[int, int]]]]]:
    """The hits, each with the later hits of other articles that say the same thing; those are
    not listed again. A hit's fact is its answering sentence for the first, its sentence most
    similar to the question for the others; two facts are the same when their sentences share
    nearly all their terms."""
    facts = [first_span, *(hit.passage.sentences[int(np.argmax(hit.sentence_cosines))] for hit in hits[1:])]
    kept: list[tuple[Hit, list[tuple[Hit, tuple[int, int]]]]] = []
    fact_terms: list[set[str]] = []
    for hit, span in zip(hits, facts):
        found = set(terms(hit.passage.text[span[0] : span[1]]))
        for (first, others), known in zip(kept, fact_terms):
            if first.passage.doc_id != hit.passage.doc_id and _same_fact(found, known):
                same = next((s for s in hit.passage.sentences if _same_fact(set(terms(hit.passage.text[s[0] : s[1]])), known)), span)
                others.append((hit, same))
                break
        else:
            kept.append((hit, []))
            fact_terms.append(found)
    return kept


def _same_fact(these: set[str], those: set[str]) -> bool:
    return bool(these) and len(these & those) / len(these | those) >= SAME_FACT_OVERLAP


def unknown_names(question: str, retrieval: Retrieval, store: PassageStore) -> list[str]:
    """Names in a question in the corpus's language (most of its terms known) that the corpus
    never mentions: "le PIB", "la Mongolie". The corpus cannot answer about what it never names.
    Questions in another language are left out: their names are spelt otherwise (Putin, Poutine)."""
    if retrieval.term_coverage < SAME_LANGUAGE_COVERAGE:
        return []
    names = _NAME.findall(question.strip())
    return [name for name in names if (found := terms(name)) and not any(store.document_frequencies(found).values())]


def footnotes_backing(passage: Passage, span: tuple[int, int]) -> tuple[int, ...]:
    """The footnotes that back a sentence of the passage (Passage.sentence_footnotes)."""
    return passage.sentence_footnotes[passage.sentences.index(span)]
