"""The reader's training windows: what it reads with each question, and whether the answer is there.

Every window is whole sentences of one passage, at most 400 characters, as the product reads them
(``qa.answer.windows.window_around`` on the passages ``citeqa build`` makes). Answerable
questions (French and English) are read on the window holding their answer. "Not here" windows,
about 35–40 % of all, come from:
- the written unanswerable questions, on the window of their article sharing most of their terms;
- answerable questions on their window with the answering sentence removed (kept only where the
  answer's text no longer appears in it);
- answerable questions on the window of their article sharing most of their terms that lacks the
  answer.
"""

from __future__ import annotations

import json
import random
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from qa.answer.windows import Window, window_around
from qa.ingest.corpus import read_corpus
from qa.ingest.passages import Passage, passages_for
from qa.ingest.text import fold, squash_spaces
from qa.store.lexical import terms


@dataclass(frozen=True)
class TrainQuestion:
    doc_id: str
    question: str
    answer: str  # "" when the article does not answer it
    answer_start: int  # in the article's corpus file; -1: unanswerable
    lang: str


@dataclass(frozen=True)
class WindowExample:
    question: str
    text: str
    answer_start: int  # in ``text``; -1: the window does not hold the answer
    answer: str
    source: str  # "answer", "unanswerable", "sentence-removed" or "other-window"


def write_training_corpus(train_files: list[Path], folder: Path, limit: int = 0) -> list[TrainQuestion]:
    """One Markdown file per article of SQuAD-format files (``# Title``, then its paragraphs, in
    the first file's order), and their questions with each answer's offset in that file. Files
    after the first add questions to its paragraphs (SQuAD 2.0: ``is_impossible`` questions have
    no answer)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = [json.loads(path.read_text("utf-8"))["data"] for path in train_files]
    extra = {(article["title"], paragraph["context"]): paragraph["qas"]
             for data in files[1:] for article in data for paragraph in article["paragraphs"]}
    questions: list[TrainQuestion] = []
    names: set[str] = set()
    for article in files[0]:
        doc_id = _unique(_slug(article["title"]), names)
        text = f"# {article['title']}\n\n"
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"] + extra.get((article["title"], context), []):
                lang = qa.get("lang", "fr")
                if qa.get("is_impossible"):
                    questions.append(TrainQuestion(doc_id, qa["question"], "", -1, lang))
                    continue
                answer = qa["answers"][0]
                if context[answer["answer_start"]:].startswith(answer["text"]):
                    questions.append(TrainQuestion(doc_id, qa["question"], answer["text"], len(text) + answer["answer_start"], lang))
            text += context + "\n\n"
        (folder / f"{doc_id}.md").write_text(text, "utf-8")
        if limit and len(questions) >= limit:
            break
    return questions[:limit] if limit else questions


def _slug(title: str) -> str:
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_title).strip("-")[:60] or "article"


def _unique(name: str, taken: set[str]) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}-{number}", number + 1
    taken.add(candidate)
    return candidate


@dataclass(frozen=True)
class ArticleWindows:
    """An article's passages and the window around each of their sentences."""

    passages: list[Passage]
    windows: list[tuple[int, Window]]  # (passage index, window), one per sentence
    window_terms: list[set[str]]

    @classmethod
    def of(cls, passages: list[Passage]) -> "ArticleWindows":
        windows = [(i, window_around(p, s)) for i, p in enumerate(passages) for s in range(len(p.sentences))]
        return cls(passages, windows, [set(terms(w.text_in(passages[i]))) for i, w in windows])

    def text(self, number: int) -> str:
        passage, window = self.windows[number]
        return window.text_in(self.passages[passage])

    def most_similar(self, question: str, lacking: str = "", besides: tuple[int, int] | None = None) -> int | None:
        """The window sharing most of the question's terms, without ``lacking``'s text and not
        holding the sentence ``besides`` (passage, sentence)."""
        wanted = set(terms(question))
        ranked = sorted(range(len(self.windows)), key=lambda n: -len(wanted & self.window_terms[n]))
        for number in ranked:
            passage, window = self.windows[number]
            if besides and passage == besides[0] and besides[1] in window.sentences:
                continue
            if not lacking or not _holds(self.text(number), lacking):
                return number
        return None


def _holds(text: str, answer: str) -> bool:
    return squash_spaces(fold(answer)) in squash_spaces(fold(text))


def training_windows(corpus_folder: Path, questions: list[TrainQuestion], chunk_size: int, chunk_overlap: int,
                     negative_share: float, seed: int) -> list[WindowExample]:
    """The windows described above, ``negative_share`` of them "not here"."""
    documents = read_corpus(corpus_folder).documents
    articles = {doc.doc_id: ArticleWindows.of(passages_for(doc, chunk_size, chunk_overlap)) for doc in documents}
    rng = random.Random(seed)
    answered, unanswerable, removed, elsewhere = [], [], [], []
    for question in questions:
        article = articles[question.doc_id]
        if not question.answer:
            number = article.most_similar(question.question)
            if number is not None:
                unanswerable.append(WindowExample(question.question, article.text(number), -1, "", "unanswerable"))
            continue
        found = _answer_window(article.passages, question)
        if found is None:
            continue
        passage_number, sentence, window = found
        passage = article.passages[passage_number]
        text = window.text_in(passage)
        at = question.answer_start - passage.start - window.start
        answered.append(WindowExample(question.question, text, at, question.answer, "answer"))
        a, b = passage.sentences[sentence]
        without = (passage.text[window.start : a] + " " + passage.text[b : window.end]).strip()
        if len(without) >= 80 and not _holds(without, question.answer):
            removed.append(WindowExample(question.question, without, -1, "", "sentence-removed"))
        other = article.most_similar(question.question, question.answer, (passage_number, sentence))
        if other is not None:
            elsewhere.append(WindowExample(question.question, article.text(other), -1, "", "other-window"))
    wanted = round(negative_share / (1 - negative_share) * len(answered)) - len(unanswerable)
    rng.shuffle(removed)
    rng.shuffle(elsewhere)
    half = max(0, wanted) // 2
    examples = answered + unanswerable + removed[:half] + elsewhere[: max(0, wanted) - half]
    rng.shuffle(examples)
    return examples


def _answer_window(passages: list[Passage], question: TrainQuestion) -> tuple[int, int, Window] | None:
    """(passage index, sentence index, window) of the sentence where the answer starts, when the
    window holds the whole answer."""
    for number, passage in enumerate(passages):
        local = question.answer_start - passage.start
        if 0 <= local < len(passage.text):
            sentence = next((i for i, (a, b) in enumerate(passage.sentences) if a <= local < b), None)
            if sentence is None:
                return None
            window = window_around(passage, sentence)
            if window.start <= local and local + len(question.answer) <= window.end:
                return number, sentence, window
            return None
    return None
