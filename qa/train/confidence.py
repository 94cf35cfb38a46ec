"""Training the confidence models (``python -m qa train-confidence``) on development questions.

Each question is asked as a user would; what the answer's signals were, whether the corpus holds
an answer and whether the sentence shown holds it are recorded. With ``cross_article``, each
question is also asked of the other articles only (the article filter): no passage there holds
its answer, so it teaches what an unanswered question looks like; with ``answer_removed``, asked
as if the passages holding the answer were not there. Figures are reported on
questions left out of training, in folds by article.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from qa.answer.pipeline import answer_signals, unknown_names
from qa.answer.judge import ConfidenceModel, fit_confidence, reliability_table
from qa.engine import Engine
from qa.tools.evaluate import Case, holds
from qa.answer.candidates import DEPTH, article_folds

BUNDLED_ARTICLE = "relations-kazakhstan-russie"  # the article of dev.jsonl and dev2.jsonl, which name none
REMOVED_SLACK = 5  # passages retrieved beyond DEPTH, so that DEPTH remain once those with the answer are dropped


@dataclass(frozen=True)
class JudgedQuestion:
    group: str  # its article: questions of one article are left out together
    source: str  # which set it comes from ("piaf-dev", "piaf-dev cross-article", "dev2", …)
    kind: str
    signals: np.ndarray
    answerable: bool  # the index asked holds its answer
    correct: bool  # the sentence shown holds it (for a source question: the references shown do)


def judged(engine: Engine, cases: list[Case], source: str, cross_article: bool = False) -> list[JudgedQuestion]:
    """Ask each question (of the other articles only, with ``cross_article``) and record its signals."""
    documents = frozenset(engine.store.documents)
    rows = []
    for case in cases:
        article = case.doc or BUNDLED_ARTICLE
        others = documents - {article} if cross_article else None
        answer = engine.ask(case.question, articles=others)
        if not answer.signals:  # nothing retrieved: nothing to learn from
            continue
        answerable = bool(case.answer) and not cross_article
        shown = answer.answer_text if answer.asks_source else answer.answer_sentence
        rows.append(JudgedQuestion(article, source + (" cross-article" if cross_article else ""), case.kind,
                                   np.array(answer.signals), answerable, answerable and holds(case.answer, shown)))
    return rows


def answer_removed(engine: Engine, cases: list[Case], source: str) -> list[JudgedQuestion]:
    """Each answerable question asked as if its article did not state the answer: the passages
    holding it are dropped from what retrieval found, the rest of the article stays. These are
    the unanswerable questions a reader of the article expects it to answer."""
    rows = []
    for case in (c for c in cases if c.answer):
        found = engine.retriever.search(case.question, DEPTH + REMOVED_SLACK)
        hits = [h for h in found.hits if not holds(case.answer, h.passage.text)][:DEPTH]
        if not hits:
            continue
        retrieval = replace(found, hits=hits)
        signals = answer_signals(engine.chooser.choose(retrieval), retrieval, unknown_names(case.question, retrieval, engine.store))
        rows.append(JudgedQuestion(case.doc or BUNDLED_ARTICLE, source + " answer removed", case.kind, signals, False, False))
    return rows


@dataclass(frozen=True)
class HeldOut:
    """Each question's judgement by models that did not see its article."""

    answered: np.ndarray
    confidence: np.ndarray


def cross_validate(rows: list[JudgedQuestion], folds: int = 5, seed: int = 0) -> HeldOut:
    answered, confidence = np.zeros(len(rows), dtype=bool), np.zeros(len(rows))
    for left_out in article_folds({r.group for r in rows}, folds, seed):
        inside = np.array([r.group in left_out for r in rows])
        model = fit_on([r for r, out in zip(rows, inside) if not out])
        for i in np.flatnonzero(inside):
            answered[i], confidence[i] = model.judge(rows[i].signals)
    return HeldOut(answered, confidence)


def fit_on(rows: list[JudgedQuestion]) -> ConfidenceModel:
    signals = np.vstack([r.signals for r in rows])
    return fit_confidence(signals, np.array([r.answerable for r in rows], float), np.array([r.correct for r in rows], float))


def held_out_report(rows: list[JudgedQuestion], held: HeldOut) -> dict:
    """By set: abstentions on answerable and on unanswerable questions; the reliability table of
    the answers shown."""
    report: dict = {}
    for source in sorted({r.source for r in rows}):
        mine = [i for i, r in enumerate(rows) if r.source == source]
        answerable = [i for i in mine if rows[i].answerable]
        unanswerable = [i for i in mine if not rows[i].answerable]
        shown = [i for i in mine if held.answered[i]]
        report[source] = {
            "questions": len(mine),
            "answerable_abstained": _share([not held.answered[i] for i in answerable]),
            "unanswerable_abstained": _share([not held.answered[i] for i in unanswerable]),
            "unanswerable_abstained_count": f"{sum(not held.answered[i] for i in unanswerable)}/{len(unanswerable)}",
            "reliability": reliability_table(held.confidence[shown], np.array([rows[i].correct for i in shown], float)),
        }
    return report


def _share(flags: list[bool]) -> float | None:
    return round(float(np.mean(flags)), 3) if flags else None


def format_held_out(report: dict) -> str:
    """The held-out figures as lines: abstentions by set, then each set's reliability table."""
    lines = [f"{'set':<32}{'questions':>10}{'answerable abstained':>22}{'unanswerable abstained':>24}"]
    for source, figures in report.items():
        share = "-" if figures["answerable_abstained"] is None else f"{figures['answerable_abstained']:.3f}"
        lines.append(f"{source:<32}{figures['questions']:>10}{share:>22}{figures['unanswerable_abstained_count']:>24}")
    for source, figures in report.items():
        lines += ["", f"reliability, {source} (answers shown): confidence bin, answers, mean confidence, share right"]
        lines += [f"  {row['bin']}  {row['answers']:>5}  {row['mean_confidence'] if row['answers'] else '-':>6}  "
                  f"{row['share_right'] if row['answers'] else '-':>6}" for row in figures["reliability"]]
    return "\n".join(lines)
