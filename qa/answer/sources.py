"""Questions that ask which source backs a fact ("quel journal est cité pour…", "according to which
source…", "who wrote the Le Monde article…"), and the answer made of the references themselves.

The rule: a question asks for a source when it asks which source, outlet or reference *cites,
reports or states* something (« quel média est cité pour », « quelle source indique que »,
« selon quel journal », « qui rapporte », "which outlet is cited for", "according to whom"), where
it is written (« où est-ce écrit »), or who *wrote or signed* a qualified article (« l'article des
Echos », "the Marianne article"; a bare « l'article » is the article being read). An outlet or a
source that is only the topic (« quelle est la source du fleuve », « quel journal a été fondé en
1944 », « quel journal a publié l'article de X ») is not asked for, nor is a speaker (« qui a dit
que… ») or a thinker (« selon quel auteur… »). Patterns are matched on folded text (no accents,
lower case), so "quel media est cite" matches.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from qa.ingest.text import fold, squash_spaces


@dataclass(frozen=True)
class SourceQuestion:
    fact: str  # the question without its source-asking words: the query for the stating sentence
    asks_author: bool  # asks who wrote or signed, rather than which outlet


# Who or what can be asked for as a source, in French and English (folded, singular or plural).
# A bare « site » is a place (site de lancement) unless it is « sur quel site », "on which site".
_OUTLET = (r"(?:source|reference|journa(?:l|ux)|quotidien|hebdomadaire|magazine|revue|media|(?:(?<=sur quel )|(?<=sur quels )"
           r"|(?<=on which )|(?<=on what ))site|site (?:web|internet|d'information|d'actualites?)"
           r"|agence(?: de presse)?|organe de presse|presse|publication|journaliste|news ?paper|paper|outlet|website"
           r"|agency|footnote|citation|journalist|reporter|daily|broadcaster)s?")
_CITABLE = rf"(?:{_OUTLET}|articles?|auteurs?|authors?)"
_ARTICLE = r"(?:articles?(?! \d)|sources?|references?|tribune|papier|depeche|op-ed|column)\b"
_INFO = (r"(?:information|affirmation|chiffre|citation|donnee|phrase|declaration|propos|passage|fait|nouvelle"
         r"|claim|statement|figure|quote|fact|number|data|sentence)s?")
# « quel », « sur quel », « quelle est la », « quel est le nom du », "which", "what's the", then maybe an adjective.
_WHICH = (r"(?:\b(?:sur|dans|de|d'|par|in|on|by|from) )?\b(?:quel(?:le)?s?|w?h?ich|what)(?:'s the | (?:est|sont|etait"
          r"|is|was|are|were) (?:(?:le|la|les|the) |l')| )(?:nom (?:du |de la |de l'|des )|name of the )?(?:[\w-]+ )?")
_ANY_WHICH = r"(?:quel(?:le)?s?|w?h?ich|what)(?: [\w-]+)? "
_FACT_INTRO = (r"(?:pour|concernant|sur|quant a|a propos|au sujet|a l'appui|en ce qui concerne|for|about|on"
               r"|regarding|concerning|in support of|to support|behind)\b")
_CITED = (r"(?:cite[er]?s?|mentionnee?s?|indiquee?s?|donnee?s?|referencee?s?|invoquee?s?|quoted|cited|referenced"
          r"|mentioned|given|credited)(?: articles?| (?:dans|en|comme|as|in) (?:l'article|les? notes?|reference|note|(?:a |the )?"
          r"source|the (?:article|footnotes?|references?)))?")
# Reporting verbs take any object; verbs of saying only a clause (« affirme que », "says that").
_REPORTS = (r"(?:(?:rapport|relat)(?:e|es|ee|ent|ait|aient)\b|cit(?:e|ent|ait)\b|mentionn\w*|evoqu\w*|indiqu\w*"
            r"|signal(?:e|ent|ait|ee)\b|parl\w*(?: (?:de|d'|du|des)|\s*\?)|fai\w* etat|provien\w*|est tiree?|lit-on|peut-on lire"
            r"|trouve-t-on|(?:reported|reporting|reports?|cites?|mentions|relates)\b|(?:affirm|assur|expliqu|soulign|precis"
            r"|estim|confirm|ecri|publi|revel|annonc)\w* qu|(?:dit|says|said|states|stated|claims|claimed|writes|wrote"
            r"|reveals|revealed|confirms|confirmed|published|announced|explains|notes|noted) (?:que|qu|that|so|this|it)\b)"
            r"(?:e |')?")

# Words between the outlet and its verb, none an inverted subject (« quel journal Poutine a-t-il cité »).
_GAP = r"(?: (?!(?!est-|sont-)\S*-(?:t-)?(?:il|elle)s?\b)\S+){{0,{}}}? "

_ASKING = [re.compile(p) for p in (
    # who wrote or signed a qualified article: « qui signe l'article des Echos », "who wrote the Marianne article"
    r"\b(?:(?:qui|quel(?:le)? (?:auteur|journaliste|redacteur))(?: a)? (?:ecrit|signe|redige)\w* |(?:quel(?:le)?|qui) est"
    r" (?:l'auteure?|le journaliste|la journaliste|le redacteur|le signataire) (?:de |d'|du |des ))(?:l'|le |la |les "
    r"|cet |cette |ce |un )?" + _ARTICLE + r"(?=\s*[^\s?])",
    r"\b(?:who|which (?:journalist|author|reporter|writer))(?: is the (?:author|writer|journalist) (?:of|behind)"
    r"| (?:wrote|writes|signed|signs|authored|penned)) (?:the|this|that|an?) (?:(?P<keep>(?:[\w'.-]+ ){1,3})"
    + _ARTICLE + "|" + _ARTICLE + r"(?=\s*[^\s?]))",
    r"\bpar qui (?:l'|le |la |cet |cette )" + _ARTICLE + r"(?P<keep>(?: [\w'-]+){0,6}?) (?:a|est)-t-(?:il|elle) ete"
    r" (?:ecrit|signe|redige)",
    # which outlet is cited for, or reports: « quel journal est cité pour », "which newspaper reported that"
    _WHICH + _CITABLE + r"\b" + _GAP.format(4) + _CITED + r"(?: " + _FACT_INTRO + r"|\s*\??\s*$)",
    _WHICH + _OUTLET + r"\b" + _GAP.format(3) + _REPORTS,
    # what is the source for: « quelle est la référence pour », "what's the source of this claim"
    _WHICH + r"(?:source|reference|citation)s? ?(?:" + _FACT_INTRO + r"|(?:de|d'|of) (?:cette |ce |ces |l'|la |le "
    r"|this |that |the )" + _INFO + r"|\??\s*$)",
    # according to which outlet (not which author: a thinker's view), cited by whom: « selon quel média »,
    # « d'après qui », "reported by which agency", « mentionné dans quel article »
    r"\b(?:selon|d'? ?apres|acc?ording to) (?:qui|whom?|" + _ANY_WHICH + _OUTLET + r")\b",
    r"\b(?:cite|rapporte|mentionne|relate|indique|affirme|cited|reported|quoted|mentioned|stated|claimed|referenced)"
    r"e?s? (?:par|dans|by|in) (?:qui|whom?|" + _ANY_WHICH + _CITABLE + r")\b",
    # who reports, who says so: « qui rapporte que », « qui l'affirme », "who reported"
    # (« qui rapporte le plus » is about money: rapporter also means to yield)
    r"^\s*(?:qui (?:rapport|relat)(?:e|ent)\b(?! (?:le plus|le moins|plus|moins|beaucoup|gros)\b)|qui (?:a|ont)"
    r" (?:rapporte|relate) (?=qu|cela|ca\b|ceci|l'information|la nouvelle|les propos|les faits|cette)"
    r"|who (?:reported|reports|is reporting|broke the news)\b(?! to\b))(?: que| qu'| that)?",
    r"(?:" + _WHICH + _OUTLET + r" )?\bqui (?:l'|le |la )(?:a )?(?:affirm\w*|dit|indiqu\w*|confirm\w*|pretend\w*|rapport\w*)\b"
    r"|\bqui (?:a )?(?:dit|affirme|pretend) (?:ca|cela|ceci)\b|\bwho (?:says|said|claims|claimed|states) (?:so|this)\b",
    # where is it written: « où est-ce écrit », « d'où vient ce chiffre », "where does this come from"
    r"\bou (?:est[- ]ce (?:que c'est )?|cela est-il |c'est |l'a-t-on |a-t-on )(?:ecrit|dit|indique|rapporte|lu|mentionne)"
    r"|\bd'ou (?:vient|provient|sort) (?:cette |ce |l')" + _INFO + r"|\bwhere (?:is|was|does|did) (?:this|that|it)"
    r"(?: claim| information)? (?:written|reported|stated|said|come from|mentioned)",
    r"^\s*(?:la |les |the )?(?:source|reference|citation)s?\s*\??\s*$",
)]
# What may remain of the asking in the fact: « cité sur », "that the article cites most often".
_LEFTOVER = re.compile(r"(?:\b(?:that|which|qu[ei]?) (?:the |l')article )?\b(?:cite[eds]?s?|quoted|referenced"
                       r"|mentioned)\b(?: (?:le plus souvent|most often|en reference|in the article|dans l'article))?"
                       r"(?: " + _FACT_INTRO + r")?")
_EDGES = re.compile(r"^(?:\W|\b(?:de|d'|des|du|que|qu'|pour|sur|of|from|by|on|about|for|that|and|et|did|does|do)\b)+"
                    r"|(?:[\s?!.,;:]|\b(?:est|sont|a ete|ont ete|is|are|was|were)\b)+$")
_AUTHOR = re.compile(r"\b(?:qui (?:a )?(?:ecrit|signe|redige)|par qui|auteure?|journaliste|redacteur|who wrote"
                     r"|who signed|authors?|journalist|reporter|writer)\b")


def _folded(text: str) -> str:
    """The text folded character by character, so that its offsets are the text's."""
    return "".join(fold(c)[:1] or c for c in text)


def _cut(text: str, start: int, end: int, kept: str = "") -> str:
    return squash_spaces(f"{text[:start]} {kept} {text[end:]}")


def source_question(question: str) -> SourceQuestion | None:
    """The fact whose source the question asks for, or None when it does not ask for a source."""
    text = squash_spaces(unicodedata.normalize("NFC", question))
    match = next((m for pattern in _ASKING if (m := pattern.search(_folded(text)))), None)
    if match is None:
        return None
    kept = text[match.start("keep"): match.end("keep")] if match.groupdict().get("keep") else ""
    fact = _cut(text, match.start(), match.end(), kept)
    while leftover := _LEFTOVER.search(_folded(fact)):
        fact = _cut(fact, leftover.start(), leftover.end())
    while edge := _EDGES.search(_folded(fact)):
        fact = _cut(fact, edge.start(), edge.end())
    return SourceQuestion(fact=fact or text, asks_author=_AUTHOR.search(match.group()) is not None)


def source_answer(references: list[str]) -> str:
    """The answer made of the references backing the sentence: each stripped, once, in order."""
    return " ; ".join(text for text in dict.fromkeys(squash_spaces(r) for r in references) if text)
