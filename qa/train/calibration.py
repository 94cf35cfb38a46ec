"""Fitting the calibration (``python -m qa calibrate``): the reader's answerability → the
probability that the answer shown is right, the confidence below which citeqa abstains, and the
vetoes kept.

Each question is taken through the stages before the judge (``qa.answer.pipeline.choice_for``);
its answerability, whether the sentence chosen holds the known answer (never, for a question the
corpus does not answer), and which vetoes hold are recorded. With ``cross_article`` each
answerable question is also asked of the other articles only, where no passage answers it.
Platt scaling maps the answerability to the probability of being right; the threshold is the
lowest confidence at which the answers shown on the training questions are right at least
TARGET_RIGHT of the time; a veto is kept only when the held-out figures (5 folds by article) are
better with it. Every figure printed is held out.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from qa.answer.judge import CALIBRATION, VETOES, Calibration, vetoes_holding
from qa.answer.question import read_question
from qa.answer.pipeline import choice_for
from qa.config import Settings, index_location
from qa.engine import Engine, open_engine, reader_folder
from qa.tools.evaluate import Case, holds, read_cases
from qa.train.folds import article_folds

BUNDLED_ARTICLE = "relations-kazakhstan-russie"  # the article of dev.jsonl and dev2.jsonl, which name none
# The share of answers shown that must be right on the training questions: the threshold's aim.
# The 0.85 issue 27 asks for is not reached by this reader at any useful threshold: held out, 0.75
# leaves 0.33 of dev2's answerable questions answered; 0.68 keeps 0.79 (docs/measurements.md).
TARGET_RIGHT = 0.68


@dataclass(frozen=True)
class ReadQuestion:
    group: str  # its article: questions of one article are left out together
    source: str  # which set it comes from ("questions", "questions cross-article", "dev2", …)
    lang: str
    answerability: float
    answerable: bool  # the index asked holds its answer
    right: bool  # the sentence chosen holds it
    vetoed_by: tuple[str, ...]
    fitted: bool = True  # False for the cross-article questions: reported, not fitted on


def read_questions(engine: Engine, cases: list[Case], source: str, cross_article: bool = False) -> list[ReadQuestion]:
    """Each question taken to the reader's choice (of the other articles only, with ``cross_article``)."""
    documents = frozenset(engine.store.documents)
    rows = []
    for case in cases:
        if cross_article and not case.answer:
            continue
        article = case.doc or BUNDLED_ARTICLE
        asked = read_question(case.question, engine.settings.max_question_chars)
        chosen = choice_for(asked, engine.retriever, engine.models, engine.settings.top_k, documents - {article} if cross_article else None)
        if chosen is None:
            continue
        retrieval, choice = chosen.retrieval, chosen.choice
        sentence = retrieval.hits[choice.hit].passage.text[choice.span[0] : choice.span[1]]
        vetoes = vetoes_holding(asked.text, sentence, retrieval, engine.store)
        answerable = bool(case.answer) and not cross_article
        rows.append(ReadQuestion(article, source + (" cross-article" if cross_article else ""), case.lang, choice.answerability,
                                 answerable, answerable and holds(case.answer, sentence), vetoes, not cross_article))
    return rows


def fit(rows: list[ReadQuestion], vetoes: tuple[str, ...]) -> Calibration:
    """Platt scaling of the answerability on whether the answer is right, and the threshold, on
    the rows fitted on."""
    rows = [r for r in rows if r.fitted]
    scores = np.array([r.answerability for r in rows])
    right = np.array([r.right for r in rows], dtype=float)
    slope, intercept = platt(scores, right)
    calibration = Calibration(slope, intercept, 0.0, vetoes)
    shown = np.array([not set(r.vetoed_by) & set(vetoes) for r in rows])
    confidence = np.array([calibration.confidence(s) for s in scores])
    threshold = lowest_reaching(confidence[shown], right[shown], TARGET_RIGHT)
    return replace(calibration, threshold=threshold)


def platt(scores: np.ndarray, labels: np.ndarray, steps: int = 3000) -> tuple[float, float]:
    """The slope and intercept of a logistic fit of ``labels`` on ``scores`` (gradient descent on
    the log loss, the scores standardised while fitting)."""
    mean, scale = scores.mean(), scores.std() + 1e-9
    x = (scores - mean) / scale
    weight, bias = 0.0, 0.0
    for _ in range(steps):
        error = 1 / (1 + np.exp(-(weight * x + bias))) - labels
        weight -= 0.5 * float((error * x).mean())
        bias -= 0.5 * float(error.mean())
    return weight / scale, bias - weight * mean / scale


def lowest_reaching(confidence: np.ndarray, right: np.ndarray, target: float) -> float:
    """The lowest confidence such that the answers at or above it are right at least ``target``
    of the time (1.0 when none is)."""
    order = np.argsort(-confidence)
    share = np.cumsum(right[order]) / np.arange(1, len(order) + 1)
    reaching = np.flatnonzero(share >= target)
    return float(confidence[order][reaching[-1]]) if len(reaching) else 1.0


@dataclass(frozen=True)
class HeldOut:
    """Each question's verdict by a calibration fitted without its article."""

    answered: np.ndarray
    confidence: np.ndarray


def cross_validate(rows: list[ReadQuestion], vetoes: tuple[str, ...], folds: int = 5, seed: int = 0) -> HeldOut:
    answered, confidence = np.zeros(len(rows), dtype=bool), np.zeros(len(rows))
    for left_out in article_folds({r.group for r in rows}, folds, seed):
        inside = np.array([r.group in left_out for r in rows])
        calibration = fit([r for r, out in zip(rows, inside) if not out], vetoes)
        for i in np.flatnonzero(inside):
            confidence[i] = calibration.confidence(rows[i].answerability)
            answered[i] = confidence[i] >= calibration.threshold and not set(rows[i].vetoed_by) & set(vetoes)
    return HeldOut(answered, confidence)


def summary(rows: list[ReadQuestion], held: HeldOut) -> dict:
    """Held out, over all questions: the share of answers shown that are right, and the share of
    answerable questions answered."""
    fitted = np.array([r.fitted for r in rows])
    right = np.array([r.right for r in rows])[fitted]
    answerable = np.array([r.answerable for r in rows])[fitted]
    held = HeldOut(held.answered[fitted], held.confidence[fitted])
    return {"shown_right": _share(right[held.answered]), "answerable_answered": _share(held.answered[answerable])}


def choose_vetoes(rows: list[ReadQuestion]) -> tuple[tuple[str, ...], dict]:
    """The vetoes whose held-out figures are best: the most answerable questions answered among
    those whose shown answers are right at least TARGET_RIGHT of the time (else the most right)."""
    figures = {names: summary(rows, cross_validate(rows, names))
               for count in range(len(VETOES) + 1) for names in itertools.combinations(VETOES, count)}

    def merit(names: tuple[str, ...]) -> tuple[bool, float]:
        reaches = (figures[names]["shown_right"] or 0) >= TARGET_RIGHT
        return reaches, figures[names]["answerable_answered"] if reaches else figures[names]["shown_right"] or 0

    best = max(figures, key=merit)
    return best, {"+".join(names) or "none": f for names, f in figures.items()}


def reliability_table(probabilities: np.ndarray, right: np.ndarray, edges=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0)) -> list[dict]:
    """For each confidence bin: how many answers, their mean confidence, and the share right."""
    rows = []
    for low, high in zip(edges, edges[1:]):
        inside = (probabilities >= low) & ((probabilities < high) if high < 1 else (probabilities <= high))
        rows.append({"bin": f"{low:.1f}–{high:.1f}", "answers": int(inside.sum()),
                     "mean_confidence": round(float(probabilities[inside].mean()), 3) if inside.any() else None,
                     "share_right": round(float(right[inside].mean()), 3) if inside.any() else None})
    return rows


def held_out_report(rows: list[ReadQuestion], held: HeldOut) -> dict:
    """By set and language: abstentions on answerable and on unanswerable questions, the share of
    answers shown that are right; the reliability table of the answers shown (cross-article
    questions aside: the calibration is not fitted on them)."""
    report: dict = {}
    groups = sorted({(r.source, r.lang) for r in rows})
    for source, lang in groups:
        mine = [i for i, r in enumerate(rows) if (r.source, r.lang) == (source, lang)]
        answerable = [i for i in mine if rows[i].answerable]
        unanswerable = [i for i in mine if not rows[i].answerable]
        shown = [i for i in mine if held.answered[i]]
        report[f"{source} {lang}"] = {
            "questions": len(mine),
            "answerable_abstained": _share([not held.answered[i] for i in answerable]),
            "unanswerable_abstained": _share([not held.answered[i] for i in unanswerable]),
            "shown_right": _share([rows[i].right for i in shown]),
            "sentence_right": _share([rows[i].right for i in answerable]),
        }
    shown = np.flatnonzero(held.answered & np.array([r.fitted for r in rows]))
    report["reliability (all answers shown)"] = reliability_table(held.confidence[shown], np.array([rows[i].right for i in shown], float))
    return report


def _share(flags) -> float | None:
    flags = list(flags)
    return round(float(np.mean(flags)), 3) if flags else None


def format_held_out(report: dict, vetoes_figures: dict) -> str:
    """The held-out figures as lines."""
    lines = ["vetoes tried (held out, all sets): shown right, answerable answered"]
    lines += [f"  {names:<28}{f['shown_right']:>8}{f['answerable_answered']:>8}" for names, f in vetoes_figures.items()]
    lines.append(f"\n{'set':<44}{'n':>6}{'sentence':>10}{'ans. abstained':>16}{'unans. abstained':>18}{'shown right':>13}")
    for name, figures in report.items():
        if name.startswith("reliability"):
            continue
        cells = [figures[k] for k in ("sentence_right", "answerable_abstained", "unanswerable_abstained", "shown_right")]
        lines.append(f"{name:<44}{figures['questions']:>6}" + "".join(f"{'-' if c is None else c:>{w}}" for c, w in zip(cells, (10, 16, 18, 13))))
    lines += ["", "reliability of the answers shown: confidence bin, answers, mean confidence, share right"]
    lines += [f"  {row['bin']}  {row['answers']:>5}  {row['mean_confidence'] or '-':>6}  {row['share_right'] or '-':>6}"
              for row in report["reliability (all answers shown)"]]
    return "\n".join(lines)


def calibrate(settings: Settings, files: list[Path], cross_article: bool, also: list[tuple[Path, str]], output: Path | None,
              say: Callable[[str], None] = print) -> Calibration:
    """Read the questions of ``files`` (and of each (file, index) of ``also``), fit the calibration
    and write it, saying the held-out figures (5 folds by article). The cross-article questions
    are only reported: fitted on, their many "not here" would set the threshold for them alone."""
    engine = open_engine(settings, calibrated=False)
    if engine.models.reader is None:
        raise ValueError("the calibration reads the reader's scores: fit it with a reader (not QA_READER=none)")
    rows = []
    for file in files:
        rows += read_questions(engine, read_cases(file), file.stem)
        if cross_article:
            rows += read_questions(engine, read_cases(file), file.stem, cross_article=True)
    for other, index in also:
        other_engine = open_engine(replace(settings, index=index_location(index)), engine.embedder, calibrated=False)
        rows += read_questions(other_engine, read_cases(other), other.stem)
    if len({r.group for r in rows}) < 2:
        raise ValueError("calibrate needs questions of at least two articles: its figures are held out by article")
    vetoes, vetoes_figures = choose_vetoes(rows)
    say(format_held_out(held_out_report(rows, cross_validate(rows, vetoes)), vetoes_figures))
    calibration = fit(rows, vetoes)
    output = output or reader_folder(settings) / CALIBRATION
    output.write_text(json.dumps(calibration.as_json(), indent=1) + "\n", "utf-8")
    say(f"vetoes kept: {', '.join(vetoes) or 'none'}; threshold {calibration.threshold:.3f}; written to {output}")
    return calibration
