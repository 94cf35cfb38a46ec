"""A question read with the conversation before it, without a language model.

A follow-up leans on the earlier turns: « Et en 2023 ? », « pour faire quoi ? », « il avait quel
âge ? », "who wrote it". It is completed with words of the conversation: of the earlier questions
and of the short answers they were given. Which ones is decided word by word by a small logistic
model (the carry model, ``qa/models/carry_model.json``), as QuReTeC (Voskarides et al., SIGIR
2020) classifies the terms of the history, here with signals instead of a network: where the word
was said (the last question, an older one, the first, an answer), how often, whether it is a
name, how the question leans (``how_it_leans``: a fragment, a reference, or standing alone) and
how many words of its own it has. A word whose probability reaches the model's threshold is
carried; nothing is generated, and the completion is the question followed by the words carried.

The model is trained by ``python -m qa train-carry`` (``qa.train.conversation``) on the dialogues
of ``../shared/eval/conversations/``, with a word labelled carried when the turn's standalone form
holds it; its figures are held out by folds of dialogues (docs/measurements.md, « Conversations »).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from qa.answer.ranking import LogisticModel, read_weights
from qa.ingest.text import fold
from qa.store.lexical import terms

# A question with at most this many content words cannot name its subject: it leans on the conversation.
SHORT_QUESTION = 2
# At most this many words carried over from the conversation.
CARRIED_WORDS = 8
# The earlier turns read (the latest ones): a subject older than that is forgotten.
TURNS_READ = 6
# What the carry model reads of an earlier word (``earlier_words``).
CARRY_FEATURES = (
    "fragment",  # the question is a fragment (how_it_leans)
    "reference",  # … a reference back (a pronoun first)
    "stands_alone",  # … neither
    "in_last_question",  # the word is in the question just before
    "recency",  # 1 / how many turns ago it was last said
    "in_first_question",  # it is in the oldest question read
    "mentions",  # log(1 + the earlier questions that have it)
    "in_last_answer",  # it is in the short answer just before
    "is_name",  # written with a capital where it was said
    "name_in_reference",  # is_name × reference
    "last_question_in_fragment",  # in_last_question × fragment
    "last_answer_in_reference",  # in_last_answer × reference
    "swaps_subject",  # the question is « Et X ? » with X its own (swaps_subject)
    "name_when_swapping",  # is_name × swaps_subject
    "own_words",  # log(1 + the question's own content words)
    "length",  # the word's length / 10
    "last_question_alone",  # in_last_question × stands_alone
    "name_alone",  # is_name × stands_alone
)

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
    """An earlier turn of the conversation: the question as asked, and what answered it."""

    question: str
    answer: str | None = None  # the short answer it was given; None when it had none


@dataclass(frozen=True)
class CarryModel:
    """Whether an earlier word is carried into the question: a probability and its threshold."""

    logistic: LogisticModel
    threshold: float

    @classmethod
    def load(cls, path: Path) -> "CarryModel":
        data = read_weights(path, "features", CARRY_FEATURES, "train-carry")
        return cls(LogisticModel.from_json(data["model"]), float(data["threshold"]))


@dataclass(frozen=True)
class EarlierWord:
    """A word of the earlier turns that the question does not have, as the carry model reads it."""

    word: str  # as it was last written
    term: str  # its BM25 term (folded, stemmed): two spellings of one word are one
    features: np.ndarray  # CARRY_FEATURES


@dataclass(frozen=True)
class Understanding:
    """How a question was understood: as asked, or completed with the conversation's words."""

    question: str  # as asked, white space squashed
    text: str  # what is answered: the question, followed by the words carried over if any
    carried: tuple[str, ...] = ()  # the conversation's words added to it (none: it stands alone)

    @property
    def completed(self) -> bool:
        return bool(self.carried)


def understand(question: str, history: Sequence[Turn], model: CarryModel) -> Understanding:
    """The question as understood after the earlier turns (oldest first): followed by the earlier
    words the model carries, the likeliest first."""
    asked = " ".join(question.split())
    found = earlier_words(asked, history)
    if not found:
        return Understanding(asked, asked)
    probabilities = model.logistic.probability(np.vstack([w.features for w in found]))
    carried = [found[i].word for i in np.argsort(-probabilities, kind="stable") if probabilities[i] >= model.threshold][:CARRIED_WORDS]
    if not carried:
        return Understanding(asked, asked)
    return Understanding(asked, f"{asked} {' '.join(carried)}", tuple(carried))


def earlier_words(question: str, history: Sequence[Turn]) -> list[EarlierWord]:
    """The content words of the last TURNS_READ turns' questions and short answers that the
    question lacks, each once (digits left out: a year or a number is asked anew), with what the
    carry model reads of it. A question that names a new subject borrows none
    (``names_a_new_subject``), so the old subject does not leak into it."""
    turns = list(history)[-TURNS_READ:]
    leaning = how_it_leans(question)
    if not turns or names_a_new_subject(question):
        return []
    own = {term for word in content_words(question) for term in terms(word)}
    seen: dict[str, dict] = {}
    for ago, turn in enumerate(reversed(turns), start=1):
        for in_question, words in ((True, content_words(turn.question)), (False, content_words(turn.answer or ""))):
            for word in words:
                term = next(iter(terms(word)), fold(word))
                if term in own or word.isdigit():
                    continue
                said = seen.setdefault(term, {"word": word, "ago": ago, "mentions": 0, "last_question": False, "last_answer": False,
                                              "first_question": False, "name": False})
                said["mentions"] += in_question
                said["last_question"] |= ago == 1 and in_question
                said["last_answer"] |= ago == 1 and not in_question
                said["first_question"] |= ago == len(turns) and in_question
                said["name"] |= word[0].isupper()
    fragment, reference, alone = float(leaning == FRAGMENT), float(leaning == REFERENCE), float(leaning is None)
    swapping, own_words = float(swaps_subject(question)), math.log1p(len(own))
    return [
        EarlierWord(said["word"], term, np.array([
            fragment, reference, alone, float(said["last_question"]), 1 / said["ago"], float(said["first_question"]),
            math.log1p(said["mentions"]), float(said["last_answer"]), float(said["name"]), said["name"] * reference,
            said["last_question"] * fragment, said["last_answer"] * reference, swapping, said["name"] * swapping, own_words,
            len(said["word"]) / 10, said["last_question"] * alone, said["name"] * alone,
        ], dtype=np.float64))
        for term, said in seen.items()
    ]


# How a question leans on the turns before it.
FRAGMENT = "fragment"  # « Et en 2023 ? », « sur combien de navires ? »: it borrows the previous question's words
REFERENCE = "reference"  # « pourquoi il dépend autant de la Russie ? »: a pronoun or a subject it does not name


def how_it_leans(question: str) -> str | None:
    """FRAGMENT (a connector first, or too few content words to say what it asks about),
    REFERENCE (a pronoun with nothing before it to refer to), or None: it stands alone."""
    words = _words(question)
    if _opens_with_connector(question, words):
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


def names_a_new_subject(question: str) -> bool:
    """Whether a question names its own subject (a name written with a capital after its first
    word), neither as « Et X ? » nor beside a word referring back: « Qui joue Lawrence Gordon ? »,
    "Who is Rika?", not « Et l'UE ? » nor « pourquoi il a quitté Moscou ? »."""
    words = _words(question)
    named = any(w[0].isupper() and not question.startswith(w) for w in content_words(question))
    return named and not _opens_with_connector(question, words) and not any(w in _REFERRING for w in words)


def swaps_subject(question: str) -> bool:
    """Whether a question asks the previous one again of another subject that it names
    (« Et l'Abkhazie ? », "and in France?"): a connector first, a content word, nothing referring back."""
    words = _words(question)
    return bool(_opens_with_connector(question, words) and any(_is_content(w) for w in words) and not any(w in _REFERRING for w in words))


def _opens_with_connector(question: str, words: list[str]) -> bool:
    return question.lower().replace("’", "'").startswith(_CONNECTOR_PHRASES) or bool(words and words[0] in _CONNECTORS)


def _split(text: str) -> list[str]:
    """A text's words as written, French inverted subjects (« a-t-il ») left out."""
    return _WORD.findall(_INVERTED_SUBJECT.sub(" ", text.replace("’", "'")).replace("'", " "))


def _words(question: str) -> list[str]:
    """The question's words in lower case."""
    return [word.lower() for word in _split(question)]


def content_words(text: str) -> list[str]:
    """The words of a text that can name a subject, as written, in order, each once."""
    return list(dict.fromkeys(w for w in _split(text) if _is_content(w.lower())))


def _is_content(word: str) -> bool:
    return not word.isdigit() and len(word) > 1 and fold(word) not in _FUNCTION_WORDS
