"""What kind of answer a question asks for (a year, a date, a quantity, a name), and whether a sentence has one.

A question that asks "when", "which year" or "how many" is not answered by a sentence without
a date or a number, however close its words are: the corpus then does not say.
"""

from __future__ import annotations

import re

from qa.ingest.text import fold

_MONTHS = (
    "janvier fevrier mars avril mai juin juillet aout septembre octobre novembre decembre "
    "january february march april may june july august september october november december"
)
_YEAR = r"\b(1[0-9]{3}|20[0-9]{2})\b"
_DATE = _YEAR + r"|\b(" + "|".join(_MONTHS.split()) + r")\b"
_NUMBER = (
    r"\d|\b(un|une|deux|trois|quatre|cinq|six|sept|huit|neuf|dix|onze|douze|quinze|vingt|trente|"
    r"cent|cents|mille|million|millions|milliard|milliards|one|two|three|four|five|six|seven|eight|"
    r"nine|ten|twelve|fifteen|twenty|hundred|thousand|million|billion)\b"
)
# (question pattern, what the answering sentence must contain), on folded text, first match wins.
_EXPECTATIONS = (
    (r"\b(quelle annee|what year|which year)\b", _YEAR),
    (r"\b(quand|a quelle date|when|what date|since when)\b", _DATE),
    (r"\b(combien|how many|how much|quel nombre|what number)\b", _NUMBER),
)


def expected_answer(question: str) -> str | None:
    """The pattern the answer must match for this question, or None when any sentence may answer."""
    folded = fold(question)
    return next((answer for asked, answer in _EXPECTATIONS if re.search(asked, folded)), None)


def fits_expected_type(question: str, sentence: str) -> bool:
    """Whether the sentence holds what the question asks for (always true for other questions)."""
    pattern = expected_answer(question)
    return pattern is None or re.search(pattern, fold(sentence)) is not None


def answer_type_fit(question: str, sentence: str) -> float:
    """+1 when the sentence holds the year, date or number the question asks for, -1 when it
    lacks it, 0 when the question asks for none of them."""
    if expected_answer(question) is None:
        return 0.0
    return 1.0 if fits_expected_type(question, sentence) else -1.0


# Questions whose answer is a name: a person (qui, who) or a place (où, where).
_ASKS_NAME = re.compile(r"\b(qui|who|whom|où|where)\b")
# A capitalised word that does not start the text.
_NAME = re.compile(r"(?<!^)(?<![.!?] )\b[A-ZÀ-Ý][\w'’-]+")


def names_new_to(question: str, sentence: str) -> bool:
    """Whether a question that asks for a person or a place meets, in the sentence, a name it
    does not already have."""
    if not _ASKS_NAME.search(question.lower()):
        return False
    known = {fold(name) for name in _NAME.findall(question.strip())}
    return any(fold(name) not in known for name in _NAME.findall(sentence.strip()))
