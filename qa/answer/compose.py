"""The compose stage: the Answer, from what the earlier stages found and decided.

The answering sentence's passage comes first, then the others; each passage's footnotes are
resolved to the references they point to. The same fact found in several articles (the same
sentence, up to a few words) is shown once, with every source.
"""

from __future__ import annotations

import numpy as np

from qa.answer.choose import Choice
from qa.answer.judge import Verdict
from qa.answer.question import Question
from qa.answer.result import Answer, AnswerPassage, Footnote, Source
from qa.answer.retrieve import Hit, Retrieval
from qa.ingest.passages import Passage
from qa.store.contract import PassageStore, reference_text
from qa.store.lexical import terms

# Share of their terms (Jaccard) above which two sentences of different articles say the same.
SAME_FACT_OVERLAP = 0.8


def compose(question: Question, retrieval: Retrieval, choice: Choice, verdict: Verdict, store: PassageStore, k: int) -> Answer:
    """The k passages, the chosen one first with its sentence and short answer, each fact once."""
    top = retrieval.hits[choice.hit]
    ordered = [top, *(h for h in retrieval.hits if h is not top)]
    short_span = None if question.source else choice.answer
    passages = tuple(
        AnswerPassage(
            passage=hit.passage,
            rank=rank,
            score=hit.score,
            sentence=choice.span if hit is top else None,
            footnotes=passage_footnotes(store, hit.passage),
            same_fact=tuple(
                Source(other.passage, span, sentence_footnotes(store, other.passage, span)) for other, span in others
            ),
            answer=short_span if hit is top else None,
        )
        for rank, (hit, others) in enumerate(group_same_facts(ordered, choice.span)[:k], start=1)
    )
    text = verdict.source_answer if question.source else (None if short_span is None else top.passage.text[short_span[0] : short_span[1]])
    return Answer(
        question.text, question.language, verdict.answered, top.passage.text[choice.span[0] : choice.span[1]],
        sentence_footnotes(store, top.passage, choice.span), passages, text, verdict.confidence,
        question.source is not None, tuple(verdict.signals),
    )


def nothing_found(question: Question) -> Answer:
    """The answer when retrieval found no passage at all."""
    return Answer(question.text, question.language, False, None, (), ())


def passage_footnotes(store: PassageStore, passage: Passage) -> tuple[Footnote, ...]:
    return tuple(Footnote(n, reference_text(store, passage.doc_id, n)) for n in passage.footnotes)


def sentence_footnotes(store: PassageStore, passage: Passage, span: tuple[int, int]) -> tuple[Footnote, ...]:
    return tuple(Footnote(n, reference_text(store, passage.doc_id, n)) for n in passage.footnotes_backing(span))


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
