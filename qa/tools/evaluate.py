"""Evaluation: run questions with known answers through the engine and measure the answers.

A question file is JSON lines with ``question``, ``answer`` (a substring of the corpus up to
white space, or null when the corpus does not answer), ``footnotes``, ``lang`` and ``kind``, and
optionally ``id`` and ``doc`` (the article's file name, for figures by article). A run's outcomes
can be saved and compared with a later run's: which questions got worse, which better.

A dialogue file (``../shared/eval/conversations/``) has, besides, ``dialogue``, ``turn`` and
``standalone`` (the question rewritten to stand alone): each turn is asked three ways, alone (as
if it opened a conversation), with the earlier turns of its dialogue, and in its standalone form.
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np

from qa.answer.conversation import CarryModel, Turn, understand
from qa.answer.result import Answer
from qa.engine import Engine
from qa.ingest.text import squash_spaces

RANK_DEPTH = 5
# Articles dropped before comparing short answers (SQuAD's normalisation, in French and English).
_ARTICLES = re.compile(r"\b(?:le|la|les|l'|un|une|des|du|de|d'|the|a|an)\b|(?<=\b[ld])'", re.IGNORECASE)


@dataclass(frozen=True)
class Case:
    question: str
    answer: str | None
    footnotes: tuple[int, ...]
    lang: str
    kind: str
    id: str = ""
    doc: str = ""
    dialogue: str = ""  # in a dialogue file: the dialogue's id
    standalone: str = ""  # in a dialogue file: the question rewritten to stand alone


@dataclass(frozen=True)
class Outcome:
    case: Case
    rank: int | None  # rank of the first passage containing the answer, if any in the top 5
    sentence_has_answer: bool
    span_f1: float  # token F1 of the short answer against the known answer (0 without one)
    short_has_answer: bool  # the short answer holds the known one (for a source question: the right reference)
    answered: bool
    footnotes: tuple[int, ...]  # cited for the answer
    seconds: float


def case_from_row(row: dict) -> Case:
    """A case from one parsed line of a question file."""
    return Case(
        row["question"], row.get("answer"), tuple(row.get("footnotes") or ()), row.get("lang", "?"), row.get("kind", "?"),
        str(row.get("id", "")), row.get("doc", ""), str(row.get("dialogue", "")), row.get("standalone", ""),
    )


def read_cases(path: Path) -> list[Case]:
    cases = []
    for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            cases.append(case_from_row(json.loads(line)))
        except (ValueError, KeyError) as error:
            raise ValueError(f"{path}:{number}: not a question line ({error})") from error
    return cases


def run_case(engine: Engine, case: Case) -> Outcome:
    return ask_case(engine, case)[0]


def ask_case(engine: Engine, case: Case, history: tuple[Turn, ...] = ()) -> tuple[Outcome, Answer]:
    """The case's question asked (after the given earlier turns), measured, and its answer."""
    started = time.perf_counter()
    answer = engine.ask(case.question, k=RANK_DEPTH, history=history)
    seconds = time.perf_counter() - started
    expected = squash_spaces(case.answer) if case.answer else None
    rank = None
    if expected:
        rank = next((p.rank for p in answer.passages if expected in squash_spaces(p.passage.text)), None)
    sentence_has_answer = holds(case.answer, answer.answer_sentence)
    cited = tuple(f.number for f in answer.answer_footnotes)
    span_f1 = token_f1(answer.answer_text, case.answer) if case.answer and answer.answer_text else 0.0
    short_has_answer = holds(case.answer, answer.answer_text)
    return Outcome(case, rank, sentence_has_answer, span_f1, short_has_answer, answer.answered, cited, seconds), answer


def holds(expected: str | None, text: str | None) -> bool:
    """Whether a text holds the known answer (up to white space)."""
    return bool(expected and text and squash_spaces(expected) in squash_spaces(text))


def answer_tokens(text: str) -> list[str]:
    """A short answer's words as SQuAD compares them: lower case, no punctuation, no articles."""
    text = unicodedata.normalize("NFC", text.lower().replace("’", "'"))
    text = _ARTICLES.sub(" ", text)
    return "".join(c if c.isalnum() or c.isspace() else " " for c in text).split()


def token_f1(found: str, expected: str) -> float:
    """SQuAD's token F1 between a short answer and the known one (1.0: the same words)."""
    these, those = answer_tokens(found), answer_tokens(expected)
    if not these or not those:
        return float(these == those)
    common = sum((Counter(these) & Counter(those)).values())
    if not common:
        return 0.0
    precision, recall = common / len(these), common / len(those)
    return 2 * precision * recall / (precision + recall)


def summarise(outcomes: list[Outcome]) -> dict:
    """The figures for a group of outcomes (docs/measurements.md says what each means)."""
    answerable = [o for o in outcomes if o.case.answer]
    unanswerable = [o for o in outcomes if not o.case.answer]
    with_footnotes = [o for o in answerable if o.case.footnotes]
    abstained = [o for o in outcomes if not o.answered]
    latencies = np.array([o.seconds for o in outcomes]) * 1000

    def share(items: list, test) -> float | None:
        return round(sum(1 for o in items if test(o)) / len(items), 3) if items else None

    cited = [f for o in with_footnotes for f in o.footnotes]
    correct = [f for o in with_footnotes for f in o.footnotes if f in o.case.footnotes]
    expected_total = sum(len(o.case.footnotes) for o in with_footnotes)
    return {
        "questions": len(outcomes),
        "answerable": len(answerable),
        "recall@1": share(answerable, lambda o: o.rank is not None and o.rank <= 1),
        "recall@3": share(answerable, lambda o: o.rank is not None and o.rank <= 3),
        "recall@5": share(answerable, lambda o: o.rank is not None and o.rank <= 5),
        "mrr": round(float(np.mean([1 / o.rank if o.rank else 0 for o in answerable])), 3) if answerable else None,
        "sentence_has_answer": share(answerable, lambda o: o.sentence_has_answer),
        "span_exact_match": share(answerable, lambda o: o.span_f1 == 1.0),
        "span_f1": round(float(np.mean([o.span_f1 for o in answerable])), 3) if answerable else None,
        "short_has_answer": share(answerable, lambda o: o.short_has_answer),
        "footnote_precision": round(len(correct) / len(cited), 3) if cited else None,
        "footnote_recall": round(len(correct) / expected_total, 3) if expected_total else None,
        "footnotes_cover_expected": share(with_footnotes, lambda o: set(o.case.footnotes) <= set(o.footnotes)),
        "abstention_precision": round(sum(1 for o in abstained if not o.case.answer) / len(abstained), 3) if abstained else None,
        "abstention_recall": share(unanswerable, lambda o: not o.answered),
        "answerable_abstained": sum(1 for o in answerable if not o.answered),
        "latency_p50_ms": round(float(np.percentile(latencies, 50)), 1) if len(latencies) else None,
        "latency_p95_ms": round(float(np.percentile(latencies, 95)), 1) if len(latencies) else None,
    }


def evaluate(engine: Engine, cases: list[Case]) -> tuple[dict, list[Outcome]]:
    """Figures overall, by language, by kind and by article (when the cases name theirs), and
    each question's outcome."""
    engine.ask(cases[0].question)  # warm-up: the first query pays one-off costs
    outcomes = [run_case(engine, c) for c in cases]
    report = {"overall": summarise(outcomes)}
    for field, label in (("lang", "lang"), ("kind", "kind"), ("doc", "article")):
        values = sorted({getattr(o.case, field) for o in outcomes} - {""})
        for value in values if len(values) > 1 or field != "doc" else ():
            report[f"{label}={value}"] = summarise([o for o in outcomes if getattr(o.case, field) == value])
    return report, outcomes


# How a dialogue's turn is asked: alone, with the earlier turns, rewritten to stand alone.
DIALOGUE_WAYS = ("alone", "conversation", "standalone")
FOLLOW_UP_KINDS = ("pronoun", "ellipsis", "same-topic")


def is_dialogue_file(cases: list[Case]) -> bool:
    return all(c.dialogue and c.standalone for c in cases)


def in_fold(cases: list[Case], fold: int, folds: int) -> list[Case]:
    """The turns of every ``folds``-th dialogue, from the ``fold``-th (1-based), in file order."""
    order = list(dict.fromkeys(c.dialogue for c in cases))
    kept = {d for number, d in enumerate(order) if number % folds == fold - 1}
    return [c for c in cases if c.dialogue in kept]


def evaluate_dialogues(engine: Engine, cases: list[Case]) -> tuple[dict, list[Outcome]]:
    """Each turn asked the three ways (DIALOGUE_WAYS): figures by way, for all turns, the
    follow-ups and each kind; with the conversation, each turn follows the engine's own earlier
    answers. Also the time taken to understand a turn after its dialogue, p50 and p95 in ms.
    The outcomes returned are the conversation's."""
    engine.ask(cases[0].question)  # warm-up: the first query pays one-off costs
    by_way = {
        "alone": [run_case(engine, c) for c in cases],
        "conversation": _in_conversation(engine, cases),
        "standalone": [run_case(engine, replace(c, question=c.standalone)) for c in cases],
    }
    kinds = sorted({c.kind for c in cases})
    groups = {"all": lambda c: True, "follow-ups": lambda c: c.kind in FOLLOW_UP_KINDS,
              **{f"kind={kind}": (lambda c, kind=kind: c.kind == kind) for kind in kinds}}
    report = {
        f"{group} {way}": summarise([o for o in by_way[way] if belongs(o.case)])
        for group, belongs in groups.items() for way in DIALOGUE_WAYS
    }
    report["understanding"] = _understanding_cost(cases, engine.models.carry)
    return report, by_way["conversation"]


def with_earlier_turns(cases: list[Case]) -> Iterator[tuple[Case, list[Turn]]]:
    """Each turn of a dialogue file with the list of its dialogue's earlier turns, empty at each
    new dialogue; the caller appends each turn to it, as it was answered."""
    history: list[Turn] = []
    for number, case in enumerate(cases):
        if number == 0 or case.dialogue != cases[number - 1].dialogue:
            history = []
        yield case, history


def _in_conversation(engine: Engine, cases: list[Case]) -> list[Outcome]:
    """Each turn asked after the earlier turns of its dialogue, with the answers the engine gave them."""
    outcomes = []
    for case, history in with_earlier_turns(cases):
        outcome, answer = ask_case(engine, case, tuple(history))
        outcomes.append(outcome)
        history.append(answer.as_turn())
    return outcomes


def _understanding_cost(cases: list[Case], model: CarryModel) -> dict:
    """The time to read each turn after the turns before it (with their known answers), p50 and p95 in ms."""
    times = []
    for case, history in with_earlier_turns(cases):
        started = time.perf_counter()
        understand(case.question, history, model)
        times.append((time.perf_counter() - started) * 1000)
        history.append(Turn(case.question, case.answer))
    return {"turns": len(times), "p50_ms": round(float(np.percentile(times, 50)), 3), "p95_ms": round(float(np.percentile(times, 95)), 3)}


def outcome_key(case: Case) -> str:
    return case.id or case.question


def write_run(path: Path, outcomes: list[Outcome]) -> None:
    """Each question's outcome, one JSON line each, to compare with a later run."""
    lines = [
        json.dumps({"key": outcome_key(o.case), "question": o.case.question, "rank": o.rank,
                    "sentence_has_answer": o.sentence_has_answer, "span_f1": round(o.span_f1, 3), "answered": o.answered}, ensure_ascii=False)
        for o in outcomes
    ]
    path.write_text("\n".join(lines) + "\n", "utf-8")


def read_run(path: Path) -> dict[str, dict]:
    return {row["key"]: row for line in path.read_text("utf-8").splitlines() if line.strip() for row in [json.loads(line)]}


def compare_runs(before: dict[str, dict], outcomes: list[Outcome]) -> str:
    """The questions whose answer got worse or better since a saved run: the answer's passage
    rank (5 = not found), the answering sentence, abstention."""
    worse, better = [], []
    for o in outcomes:
        old = before.get(outcome_key(o.case))
        if old is None or not o.case.answer:
            continue
        then = (old["rank"] or RANK_DEPTH + 1, not old["sentence_has_answer"], not old["answered"])
        now = (o.rank or RANK_DEPTH + 1, not o.sentence_has_answer, not o.answered)
        line = (f"  {o.case.question}  rank {old['rank'] or '-'} → {o.rank or '-'}, "
                f"sentence {'✓' if old['sentence_has_answer'] else '✗'} → {'✓' if o.sentence_has_answer else '✗'}"
                + ("" if old["answered"] == o.answered else f", {'answered' if o.answered else 'abstained'}"))
        if now != then:
            (worse if (now[1], now[0], now[2]) > (then[1], then[0], then[2]) else better).append(line)
    return "\n".join([f"worse ({len(worse)}):", *worse, f"better ({len(better)}):", *better])


def format_report(report: dict) -> str:
    """A table: one row per group, one column per figure."""
    columns = ["questions", "recall@1", "recall@3", "recall@5", "mrr", "sentence_has_answer", "span_exact_match", "span_f1", "short_has_answer",
               "footnotes_cover_expected", "footnote_precision", "footnote_recall",
               "abstention_precision", "abstention_recall", "answerable_abstained", "latency_p50_ms", "latency_p95_ms"]
    short = ["n", "R@1", "R@3", "R@5", "MRR", "sent", "EM", "F1", "A⊇", "fn⊇", "fnP", "fnR", "absP", "absR", "ans✗", "p50ms", "p95ms"]
    rows = [["group", *short]]
    for group, figures in report.items():
        if "questions" not in figures:
            continue  # not a group of questions (a dialogue file's understanding cost)
        rows.append([group, *("-" if figures[c] is None else str(figures[c]) for c in columns)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows)
    cost = report.get("understanding")
    if cost:
        table += f"\nunderstanding a turn after its dialogue: p50 {cost['p50_ms']} ms, p95 {cost['p95_ms']} ms ({cost['turns']} turns)"
    return table
