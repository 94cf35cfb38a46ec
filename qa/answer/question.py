"""The question as asked: checked (not empty, not too long), its language, and whether it asks
which source says a fact (then the fact is what is searched for)."""

from __future__ import annotations

from dataclasses import dataclass

from qa.answer.sources import SourceQuestion, source_question

_ENGLISH_WORDS = frozenset(
    "the what who when where which why how is are was were did does do of in to and a an with "
    "from for on at by between has have had much many long share".split()
)
_FRENCH_WORDS = frozenset(
    "le la les des du de un une est sont qui que quel quelle quels quelles quand où comment "
    "combien pourquoi et en au aux dans par pour sur avec a-t-il a-t-elle qu'est-ce ce cette".split()
)


class QuestionError(ValueError):
    """The question cannot be asked as it is (empty, too long); the message says why, ``reason``
    ("empty" or "too_long") with ``length`` and ``limit`` let a page say it in its own words."""

    def __init__(self, message: str, reason: str, length: int = 0, limit: int = 0) -> None:
        super().__init__(message)
        self.reason, self.length, self.limit = reason, length, limit


@dataclass(frozen=True)
class Question:
    text: str  # as asked, white space squashed
    language: str  # "fr" or "en": the language of messages
    source: SourceQuestion | None  # set when it asks which source says a fact

    @property
    def query(self) -> str:
        """What retrieval searches for: the fact, for a question asking for its source."""
        return self.source.fact if self.source else self.text


def read_question(raw: str, max_chars: int) -> Question:
    """The question checked and described; QuestionError when it is empty or too long."""
    text = " ".join(raw.split())
    if not text:
        raise QuestionError("the question is empty", "empty")
    if len(text) > max_chars:
        raise QuestionError(f"the question is {len(text)} characters long; the limit is {max_chars}", "too_long", len(text), max_chars)
    return Question(text, question_language(text), source_question(text))


def question_language(question: str) -> str:
    """"fr" or "en": which of the two the question's function words point to (French if unsure)."""
    words = question.lower().replace("’", "'").replace("?", " ").split()
    english = sum(w in _ENGLISH_WORDS for w in words)
    french = sum(w in _FRENCH_WORDS for w in words)
    return "en" if english > french else "fr"
