"""Training the confidence models (``python -m qa train-confidence``) on development questions.

Each question is asked as a user would; what the answer's signals were, whether the corpus holds
an answer and whether the sentence shown holds it are recorded. With ``cross_article``, each
question is also asked of the other articles only (the article filter): no passage there holds
its answer, so it teaches what an unanswered question looks like; with ``answer_removed``, asked
as if the passages holding the answer were not there. Figures are reported on
questions left out of training, in folds by article.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from qa.answer.candidates import DEPTH, find_candidates
from qa.answer.choose import choose
from qa.answer.judge import CONFIDENCE_MODEL, SIGNALS, ConfidenceModel, answer_signals, decide, unknown_names
from qa.answer.ranking import LogisticModel
from qa.answer.reading import read
from qa.config import Settings, index_location
from qa.engine import Engine, open_engine, reader_folder
from qa.tools.evaluate import Case, holds, read_cases
from qa.train.folds import article_folds

BUNDLED_ARTICLE = "relations-kazakhstan-russie"  # the article of dev.jsonl and dev2.jsonl, which name none
REMOVED_SLACK = 5  # passages retrieved beyond DEPTH, so that DEPTH remain once those with the answer are dropped
# The share of answerable questions that may be abstained on at most (the threshold is set to it
# on the training questions).
ABSTAINED_ANSWERABLE = 0.03


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
        retrieval, models = replace(found, hits=hits), engine.models
        candidates = find_candidates(retrieval, models.sentence)
        readings = read(models.reader, retrieval, candidates, models.read_windows)
        signals = answer_signals(choose(candidates, readings, models.choice), retrieval, unknown_names(case.question, retrieval, engine.store))
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
            answered[i], confidence[i] = decide(rows[i].signals, model)
    return HeldOut(answered, confidence)


def fit_on(rows: list[JudgedQuestion]) -> ConfidenceModel:
    signals = np.vstack([r.signals for r in rows])
    return fit_confidence(signals, np.array([r.answerable for r in rows], float), np.array([r.correct for r in rows], float))


def fit_logistic(signals: np.ndarray, labels: np.ndarray, l2: float = 0.01, steps: int = 2000) -> LogisticModel:
    """Weights minimising the log loss plus an L2 penalty, by gradient descent on standardised signals."""
    mean, scale = signals.mean(0), signals.std(0) + 1e-9
    x = (signals - mean) / scale
    weights, bias = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        error = 1 / (1 + np.exp(-(x @ weights + bias))) - labels
        weights -= 0.5 * (x.T @ error / len(x) + l2 * weights)
        bias -= 0.5 * float(error.mean())
    return LogisticModel(mean, scale, weights, bias)


def fit_confidence(signals: np.ndarray, answerable: np.ndarray, correct: np.ndarray) -> ConfidenceModel:
    """Both models, and the threshold that abstains on ABSTAINED_ANSWERABLE of the answerable questions."""
    answers = fit_logistic(signals, answerable)
    threshold = float(np.quantile(answers.probability(signals[answerable == 1]), ABSTAINED_ANSWERABLE))
    return ConfidenceModel(answers, fit_logistic(signals, correct), threshold)


def save_confidence(model: ConfidenceModel, path: Path) -> None:
    data = {"signals": list(SIGNALS), "answerable": model.answerable.to_json(), "correct": model.correct.to_json(), "threshold": model.threshold}
    path.write_text(json.dumps(data, indent=1) + "\n", "utf-8")


def reliability_table(probabilities: np.ndarray, right: np.ndarray, edges=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0)) -> list[dict]:
    """For each confidence bin: how many answers, their mean confidence, and the share right."""
    rows = []
    for low, high in zip(edges, edges[1:]):
        inside = (probabilities >= low) & ((probabilities < high) if high < 1 else (probabilities <= high))
        rows.append({"bin": f"{low:.1f}–{high:.1f}", "answers": int(inside.sum()),
                     "mean_confidence": round(float(probabilities[inside].mean()), 3) if inside.any() else None,
                     "share_right": round(float(right[inside].mean()), 3) if inside.any() else None})
    return rows


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


def train_confidence(settings: Settings, file: Path, cross_article: bool, answer_removed_too: bool,
                     also: list[tuple[Path, str]], output: Path | None, say: Callable[[str], None] = print) -> None:
    """Ask the questions of ``file`` (and of each (file, index) of ``also``), fit both models and
    write them, saying the held-out figures (5 folds by article)."""
    engine = open_engine(settings, judged=False)
    if engine.models.reader is None:
        raise ValueError("the confidence models read the reader's scores: train them with a reader (not QA_READER=none)")
    rows = judged(engine, read_cases(file), file.stem)
    if cross_article:
        rows += judged(engine, read_cases(file), file.stem, cross_article=True)
    if answer_removed_too:
        rows += answer_removed(engine, read_cases(file), file.stem)
    for other, index in also:
        rows += judged(open_engine(replace(settings, index=index_location(index)), engine.embedder, judged=False),
                       read_cases(other), other.stem)
    say(format_held_out(held_out_report(rows, cross_validate(rows))))
    output = output or reader_folder(settings) / CONFIDENCE_MODEL
    save_confidence(fit_on(rows), output)
    say(f"written to {output} (figures above: questions whose article was left out of training, 5 folds)")
