"""A question read with the conversation before it, without a language model.

A follow-up leans on the earlier turns in one of two ways:

- a fragment opens with a connector (« Et en 2023 ? », "and its population?") or has too few
  content words to say what it asks about (« sur combien de navires ? »): it borrows the previous
  turn's names and content words;
- a reference starts from a pronoun or possessive with nothing before it to refer to (« il avait
  quel âge ? », "why did he go…"): it borrows the previous turn's proper names only.

The previous turn is taken as it was understood, so a subject carries along a chain of follow-ups.
Its names are those written with a capital, and those typed in lower case that the passage which
answered it writes with a capital (spelt as there: « tokaiev » → « Tokaïev »). Nothing is
generated: the completion is the question followed by the conversation's own words. A question
that names its subject (enough content words, no pronoun before them) is left as it is, so the old
subject does not leak into it.

The rules and their numbers were set on the first of two folds of the dialogues of
``../shared/eval/conversations/`` (every other dialogue) and measured on the second
(``qa eval FILE --fold 2/2``; docs/measurements.md, « Conversations »). Carrying the answering
passage's own names as well was tried there and dropped: it pulled pronoun follow-ups towards
that passage (kz, fold 1: pronoun turns' answering sentence 0.19 with, 0.38 without).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from qa.ingest.text import fold, without_footnotes

# A question with at most this many content words cannot name its subject: it leans on the conversation.
SHORT_QUESTION = 2
# At most this many words carried over from the conversation.
CARRIED_WORDS = 8
# The earlier turns read (the latest ones): a subject older than that is forgotten.
TURNS_READ = 6

# Words that open a follow-up: « Et en 2023 ? », "and its population?", "what about…".
_CONNECTORS = frozenset("et and mais but also aussi puis then ou or sinon".split())
_CONNECTOR_PHRASES = ("what about", "how about", "et pour", "et concernant", "quid de")
# Pronouns, possessives and demonstratives that refer back (as typed: « là » is not « la »).
_REFERRING = frozenset(
    """il elle ils elles lui eux son sa ses leur leurs celui celle ceux celles cela ça ca là-bas
    y ce cet cette ces it its they them their theirs he him his she her this these those""".split()
)
# « ce » is no demonstrative before these (« ce que », « ce qui »).
_NOT_AFTER_CE = frozenset("que qu qui dont".split())
# French subject pronouns after the verb (« a-t-il », « sont-elles ») refer to the question's own subject.
_INVERTED_SUBJECT = re.compile(r"-(?:t-)?(?:il|elle|ils|elles|on|ce)\b", re.IGNORECASE)
_WORD = re.compile(r"[^\W_]+(?:-[^\W_]+)*", re.UNICODE)
# Folded words that say nothing about the subject: function words and question words, in both languages.
_FUNCTION_WORDS = frozenset(
    """a au aux avec ce ces cet cette dans de des du elle elles en est et etait il ils je l la le
    les leur leurs lui mais me meme mes moi mon ne nos notre nous on ou par pas pour qu que qui
    quel quelle quels quelles quand comment combien pourquoi quoi sa sans se ses son sont sur ta
    te tes toi ton tu un une vos votre vous d s c n j m t y ete etre avoir ont fait faire dont
    ca cela ceci celui celle ceux celles eux ete etaient sera avait avaient peut entre depuis vers
    chez apres avant plus tres tout tous toute toutes autre autres quoi-que donc alors aussi puis
    the what who whom whose when where which why how is are was were be been being did does do
    done of in to and a an with from for on at by has have had much many it its they them their
    he him his she her this that these those there then than or but also about into as not no
    any some can could would will should may might me my we our you your i so if just still
    else other others more most very""".split()
)


@dataclass(frozen=True)
class Turn:
    """An earlier turn of the conversation: the question as asked, and the text that answered it."""

    question: str
    answer_passage: str | None = None  # the answering sentence (or its passage); None when none did


@dataclass(frozen=True)
class Understanding:
    """How a question was understood: as asked, or completed with the conversation's words."""

    question: str  # as asked, white space squashed
    text: str  # what is answered: the question, followed by the words carried over if any
    carried: tuple[str, ...] = ()  # the conversation's words added to it (none: it stands alone)

    @property
    def completed(self) -> bool:
        return bool(self.carried)

    def names(self, answer_passage: str | None = None) -> list[str]:
        """The proper names it holds: the question's (also those typed in lower case that the
        passage that answered it writes with a capital, spelt as there), then those carried over."""
        written = {fold(name): name for name in names_in(answer_passage or "")}
        typed = [written.get(fold(word), word) for word in content_words(self.question)
                 if word[0].isupper() or fold(word) in written]
        return list(dict.fromkeys([*typed, *(w for w in self.carried if w[0].isupper())]))


def understand(question: str, history: Sequence[Turn] = ()) -> Understanding:
    """The question as understood after the earlier turns (oldest first)."""
    previous: Understanding | None = None
    answered_by: str | None = None
    for turn in list(history)[-TURNS_READ:]:
        previous, answered_by = _read_turn(turn.question, previous, answered_by), turn.answer_passage
    return _read_turn(question, previous, answered_by)


def _read_turn(question: str, previous: Understanding | None, previous_answer: str | None) -> Understanding:
    """One turn read after the one before it (``previous``, as it was understood, and the passage
    that answered it)."""
    asked = " ".join(question.split())
    leaning = how_it_leans(asked) if previous is not None else None
    if leaning is None:
        return Understanding(asked, asked)
    have = {fold(w) for w in content_words(asked)}
    # A fragment borrows the previous turn's words; a reference, only the names it can refer to.
    names = previous.names(previous_answer)
    borrowed = [*names, *content_words(previous.text)] if leaning == FRAGMENT else names
    carried = _new_words(borrowed, have, CARRIED_WORDS)
    if not carried:
        return Understanding(asked, asked)
    return Understanding(asked, f"{asked} {' '.join(carried)}", tuple(carried))


def _new_words(words: list[str], have: set[str], limit: int) -> list[str]:
    """Up to ``limit`` of the words not in ``have`` (folded), which gains them."""
    kept = []
    for word in words:
        if len(kept) < limit and fold(word) not in have:
            kept.append(word)
            have.add(fold(word))
    return kept


# How a question leans on the turns before it.
FRAGMENT = "fragment"  # « Et en 2023 ? », « sur combien de navires ? »: it borrows the previous question's words
REFERENCE = "reference"  # « pourquoi il dépend autant de la Russie ? »: a pronoun or a subject it does not name


def how_it_leans(question: str) -> str | None:
    """FRAGMENT (a connector first, or too few content words to say what it asks about),
    REFERENCE (a pronoun with nothing before it to refer to), or None: it stands alone."""
    lowered = question.lower().replace("’", "'")
    words = _WORD.findall(_INVERTED_SUBJECT.sub(" ", lowered).replace("'", " "))
    if lowered.startswith(_CONNECTOR_PHRASES) or (words and words[0] in _CONNECTORS):
        return FRAGMENT
    if len([w for w in words if _is_content(w)]) <= SHORT_QUESTION:
        return FRAGMENT
    for position, word in enumerate(words):
        if _is_content(word):
            return None  # a content word came first: a pronoun after it may refer to it
        following = words[position + 1] if position + 1 < len(words) else ""
        if word in _REFERRING and not (word == "ce" and following in _NOT_AFTER_CE):
            return REFERENCE
    return None


def content_words(text: str) -> list[str]:
    """The words of a text that can name a subject, as written, in order, each once."""
    words = _WORD.findall(_INVERTED_SUBJECT.sub(" ", text.replace("’", "'")).replace("'", " "))
    return list(dict.fromkeys(w for w in words if _is_content(w.lower())))


def names_in(text: str) -> list[str]:
    """The capitalised words of a text that do not open a sentence (proper names), in order."""
    text = without_footnotes(text)
    names = [m.group() for m in _WORD.finditer(text) if m.group()[0].isupper() and not _opens_sentence(text, m.start())]
    return list(dict.fromkeys(n for n in names if _is_content(n.lower())))


def _opens_sentence(text: str, start: int) -> bool:
    before = text[:start].rstrip(" «\"“(")
    return not before or before[-1] in ".!?…:"


def _is_content(word: str) -> bool:
    return not word.isdigit() and len(word) > 1 and fold(word) not in _FUNCTION_WORDS
