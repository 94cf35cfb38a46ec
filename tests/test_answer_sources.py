"""Asking which source says so: the question is recognised from its wording, in French or English,
with or without accents, its fact is kept for retrieval, and the answer is made of the references."""

from __future__ import annotations

import json

import pytest

from conftest import ROOT
from qa.answer.sources import SourceQuestion, source_answer, source_question

ASKING_FOR_A_SOURCE = [
    # from eval/dev2.jsonl
    "Quel média est cité pour la recherche par le Kazakhstan de routes pétrolières évitant la Russie ?",
    "Quel journal est cité pour le départ des soldats russes du Kazakhstan ?",
    "Quelle source est citée pour le refus kazakh de reconnaître l'Abkhazie, l'Ossétie du Sud et la Crimée ?",
    "Sur quel site est paru l'article cité à propos de la guerre menée par la Russie dans le Donbass depuis 2014 ?",
    "Qui signe l'article des Echos cité sur le pétrole KEBCO ?",
    "Quelle source est indiquée pour l'accord sur la carte officielle de la frontière ?",
    "Which newspaper is cited for Kazakhstan asking Moscow and its allies for help during the riots?",
    "Who wrote the Marianne article that the article cites most often?",
    "Which outlet is cited for the show of unity between Putin and Tokayev in November 2022?",
    # other wordings, French
    "quel media est cite pour la visite de poutine ?",
    "quelle journal est citer pour le depart des soldats",
    "Quels journaux sont cités pour le départ des soldats ?",
    "Quel est le nom du journal cité pour la visite de Poutine ?",
    "Quelle référence est donnée pour la carte de la frontière ?",
    "Selon quelle source la Russie a-t-elle retiré ses troupes ?",
    "selon quel journal Tokaïev a-t-il refusé de reconnaître la Crimée ?",
    "D'après quel média le Kazakhstan cherche-t-il d'autres routes ?",
    "dapres quel journal les troupes sont parties ?",
    "Qui rapporte que la Russie a déployé 2000 soldats ?",
    "Quel quotidien rapporte la visite de Poutine à Astana ?",
    "Quelle agence de presse indique que l'accord a été signé ?",
    "Dans quel journal lit-on que le Kazakhstan a refusé ?",
    "De quelle source provient l'information sur le marquage frontalier ?",
    "Cette information est rapportée par quel journal ?",
    "Quelle est la référence pour la longueur de la frontière ?",
    "Quelle est la source de cette information ?",
    "Qui l'affirme ?",
    "Où est-ce écrit ?",
    "ou est ce que c'est ecrit ?",
    "Qui est l'auteur de l'article d'Euractiv sur la guerre en Ukraine ?",
    "Par qui l'article du Monde a-t-il été écrit ?",
    # other wordings, English
    "What source says that Russia sent troops?",
    "What's the source of this claim?",
    "According to which source did Russia withdraw its troops?",
    "according to whom did Kazakhstan refuse to recognise Crimea?",
    "acording to wich newspaper did russia leave ?",
    "Which news agency reported that the border map was agreed?",
    "Which website is cited for the war in Donbass?",
    "Who reported that Kazakhstan asked Moscow for help?",
    "The withdrawal was reported by which newspaper?",
    "Who says so?",
    "Where is this written?",
    "Who is the author of the cited article about KEBCO oil?",
]

ORDINARY_QUESTIONS = [
    "Combien de soldats la Russie a-t-elle déployés en janvier 2022 ?",
    "Qui est le président du Kazakhstan ?",
    "Quel journal a été fondé en 1944 ?",  # a newspaper as the topic, not as the source of a fact
    "Quel journal a publié l'article de Claude Moniquet ?",  # about the reference itself
    "Where is the Russian embassy?",
    "Who is Russia's ambassador in Astana?",
    "Quelle est la source du fleuve Oural ?",
    "What is the main source of Kazakhstan's income?",
    "Quelle est la source d'énergie principale du pays ?",
    "Qui a dit que la Crimée était russe ?",  # a speaker, not a source
    "Who said that Crimea is Russian?",
    "Qui a signé l'accord approuvant une carte officielle de la frontière ?",
    "Selon quel critère la frontière a-t-elle été tracée ?",
    "Selon quel auteur la liberté n'est-elle pas indispensable à l'individu ?",  # a thinker's view
    "Qui est l'auteur de l'article ?",  # the article being read
    "Who wrote the article?",
    "Qui a écrit l'article 5 de la Constitution ?",
    "Quels auteurs sont cités dans les Pensées ?",
    "Quelle revue a publié les écrits de Peirce ?",
    "Quel journal Poutine a-t-il cité dans son discours ?",
    "Quel site est indiqué sur la carte ?",
    "Quelle agence assure la sécurité du cosmodrome ?",
    "Qui rapporte le plus d'argent au Kazakhstan ?",
    "Who reported to the president?",
    "What is the name of the Ukrainian president mentioned in the article?",
    "À quelle date l'article de Marianne cité en référence a-t-il été publié ?",
    "D'où vient le nom Kazakhstan ?",
]


def _questions(path, kind=None) -> list[str]:
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return [row["question"] for row in rows if kind is None or row["kind"] == kind]


@pytest.mark.parametrize("question", ASKING_FOR_A_SOURCE)
def test_a_question_asking_which_source_says_so_is_recognised(question):
    assert isinstance(source_question(question), SourceQuestion)


@pytest.mark.parametrize("question", ORDINARY_QUESTIONS)
def test_an_ordinary_question_even_about_a_paper_or_a_river_source_is_not_a_source_question(question):
    assert source_question(question) is None


def test_every_reference_question_of_the_dev_sets_is_recognised():
    questions = _questions(ROOT / "eval" / "dev.jsonl", "reference") + _questions(ROOT / "eval" / "dev2.jsonl", "reference")
    assert len(questions) >= 14
    assert [q for q in questions if source_question(q) is None] == []


def test_none_of_the_piaf_questions_written_by_strangers_is_taken_for_a_source_question():
    questions = _questions(ROOT / "eval" / "piaf-dev" / "questions.jsonl")
    assert [q for q in questions if source_question(q)] == []


@pytest.mark.parametrize(
    ("question", "kept", "dropped"),
    [
        ("Quel journal est cité pour le départ des soldats russes du Kazakhstan ?",
         ["départ des soldats russes du Kazakhstan"], ["journal", "cité", "?"]),
        ("quel media est cite pour la visite de poutine ?", ["la visite de poutine"], ["media", "cite"]),
        ("Selon quelle source la Russie a-t-elle retiré ses troupes ?", ["Russie", "retiré ses troupes"],
         ["Selon", "source"]),
        ("Qui rapporte que la Russie a déployé 2000 soldats ?", ["la Russie a déployé 2000 soldats"],
         ["rapporte", "que"]),
        ("Qui signe l'article des Echos cité sur le pétrole KEBCO ?", ["Echos", "pétrole KEBCO"],
         ["signe", "article", "cité"]),
        ("Who wrote the Marianne article that the article cites most often?", ["Marianne"], ["wrote", "cites"]),
        ("Which newspaper is cited for Kazakhstan asking Moscow and its allies for help during the riots?",
         ["Kazakhstan asking Moscow", "riots"], ["newspaper", "cited"]),
        ("Sur quel site est paru l'article cité à propos de la guerre menée par la Russie dans le Donbass depuis 2014 ?",
         ["la guerre menée par la Russie dans le Donbass depuis 2014"], ["site", "paru", "cité", "propos"]),
    ],
)
def test_the_fact_keeps_what_to_look_for_and_drops_the_asking_words(question, kept, dropped):
    fact = source_question(question).fact
    assert all(words in fact for words in kept), fact
    assert not any(word in fact for word in dropped), fact


def test_a_question_that_is_only_asking_keeps_itself_as_the_fact():
    assert source_question("Qui l'affirme ?").fact == "Qui l'affirme ?"
    assert source_question("Quelle est la source ?").fact == "Quelle est la source ?"


@pytest.mark.parametrize(
    ("question", "asks_author"),
    [
        ("Qui signe l'article des Echos cité sur le pétrole KEBCO ?", True),
        ("Who wrote the Marianne article that the article cites most often?", True),
        ("Qui est l'auteur de l'article d'Euractiv sur la guerre en Ukraine ?", True),
        ("Quel journal est cité pour le départ des soldats russes du Kazakhstan ?", False),
        ("Which outlet is cited for the show of unity between Putin and Tokayev in November 2022?", False),
        ("Qui rapporte que la Russie a déployé 2000 soldats ?", False),
    ],
)
def test_asking_who_wrote_or_signed_asks_for_the_author_not_the_outlet(question, asks_author):
    assert source_question(question).asks_author is asks_author


def test_the_answer_is_the_backing_references_once_each_in_order():
    references = ["  Le Monde, « Les soldats russes quittent le Kazakhstan », 13 janvier 2022 ",
                  "RFI, 5 juillet 2022", "Le Monde, « Les soldats russes quittent le Kazakhstan », 13 janvier 2022", ""]
    assert source_answer(references) == (
        "Le Monde, « Les soldats russes quittent le Kazakhstan », 13 janvier 2022 ; RFI, 5 juillet 2022")
    assert source_answer(["RFI"]) == "RFI"
    assert source_answer([]) == ""
