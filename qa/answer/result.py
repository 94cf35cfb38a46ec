"""What an answer is, for the command line, the chat and evaluation: the Answer dataclass family.

Nothing in it is generated: the answering sentence is a sentence of one of the passages, the short
answer a span of it (or, for a question asking for a source, the text of the references backing
it), and each footnote the reference its marker points to.
"""

from __future__ import annotations

from dataclasses import dataclass

from qa.answer.conversation import Turn
from qa.ingest.passages import Passage

NO_ANSWER = {
    "fr": "Je n'ai pas trouvé de réponse dans le corpus.",
    "en": "I found no answer in the corpus.",
}


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
class MatchExplanation:
    """How one passage shown matched the question (ranks are among the passages retrieved)."""

    passage_id: str
    terms: tuple[str, ...]  # the question's terms the passage holds, as the passage writes them
    spans: tuple[tuple[int, int], ...]  # where they are in passage.text
    dense: float  # the dense score (mean cosine to the passage and to its best sentence)
    dense_rank: int
    lexical: float  # BM25 divided by the best BM25 of the question (0: no term in common)
    lexical_rank: int | None  # None when BM25 did not find it
    reader: float | None  # the reader's best margin in the passage (best span minus "not here"); None: not read


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
    signals: tuple[float, ...] = ()  # what the confidence models read (qa.answer.judge.SIGNALS)
    # The question as answered: completed with words of the conversation (qa.answer.conversation),
    # or the question itself.
    understood_as: str = ""
    explanations: tuple[MatchExplanation, ...] = ()  # why each passage was shown, in order (when asked for)

    @property
    def completed(self) -> bool:
        """Whether the question was completed with words of the conversation before it."""
        return bool(self.understood_as) and self.understood_as != self.question

    @property
    def message(self) -> str | None:
        """What to say instead of an answer when the corpus does not answer."""
        return None if self.answered else NO_ANSWER[self.language]

    def as_turn(self) -> Turn:
        """This question and the short answer it was given (none if it abstained), as an earlier turn."""
        return Turn(self.question, self.answer_text if self.answered else None)

    @property
    def sources(self) -> tuple[Source, ...]:
        """Every passage that says the answering sentence: the first passage, then the others."""
        if not self.passages or self.passages[0].sentence is None:
            return ()
        first = self.passages[0]
        return (Source(first.passage, first.sentence, self.answer_footnotes), *first.same_fact)
