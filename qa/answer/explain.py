"""Why a passage was shown: the question's terms it holds (where), how each retriever scored and
ranked it, and what the reader made of it. Read off the stages' outputs; nothing is recomputed
but the terms' places in the passage."""

from __future__ import annotations

import re
import numpy as np

from qa.answer.candidates import Candidates
from qa.answer.reading import READER_FEATURES, Readings
from qa.answer.result import MatchExplanation
from qa.answer.retrieve import Retrieval
from qa.ingest.passages import Passage
from qa.store.lexical import terms

_WORD = re.compile(r"\w+")


def explain_matches(passages: list[Passage], retrieval: Retrieval, found: Candidates, readings: Readings | None) -> tuple[MatchExplanation, ...]:
    """The explanation of each passage shown (in retrieval.hits), in the order given."""
    by_id = {hit.passage.id: position for position, hit in enumerate(retrieval.hits)}
    dense_rank = _ranks([hit.dense for hit in retrieval.hits])
    lexical_rank = _ranks([hit.lexical for hit in retrieval.hits])
    reader = _reader_margins(found, readings)
    wanted = set(retrieval.query_terms)
    explained = []
    for passage in passages:
        position = by_id[passage.id]
        hit = retrieval.hits[position]
        spans = term_spans(passage.text, wanted)
        explained.append(MatchExplanation(
            passage.id, tuple(dict.fromkeys(passage.text[a:b] for a, b in spans)), spans, round(hit.dense, 4),
            dense_rank[position], round(hit.lexical, 4), lexical_rank[position] if hit.lexical > 0 else None,
            None if position not in reader else round(reader[position], 3),
        ))
    return tuple(explained)


def term_spans(text: str, wanted: set[str]) -> tuple[tuple[int, int], ...]:
    """Where the words of ``text`` whose BM25 term (folded, stemmed) is wanted are."""
    return tuple((m.start(), m.end()) for m in _WORD.finditer(text) if (found := terms(m.group())) and found[0] in wanted)


def _ranks(scores: list[float]) -> list[int]:
    """Each score's rank (1: the highest), ties by order."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    ranks = [0] * len(scores)
    for rank, position in enumerate(order, start=1):
        ranks[position] = rank
    return ranks


def _reader_margins(found: Candidates, readings: Readings | None) -> dict[int, float]:
    """For each passage (position in retrieval.hits) the reader read, its best margin."""
    if readings is None:
        return {}
    margin, was_read = READER_FEATURES.index("reader_margin"), READER_FEATURES.index("reader_read")
    best: dict[int, float] = {}
    for candidate, row in zip(found.found, readings.features):
        if row[was_read] > 0:
            best[candidate.hit] = max(best.get(candidate.hit, -np.inf), float(row[margin]))
    return best
