"""What the chat writes, as plain functions of the answers (no Streamlit here): corpus text escaped
for Markdown, the answering sentence highlighted with its short answer, the labels in the
question's language (the page's in the language of the latest question, refusals included), the
confidence's words, why a passage was shown, the conversation exported as Markdown that reads as
plain text, and the progress of an upload or removal."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable

from qa.answer.question import QuestionError, question_language
from qa.answer.result import Answer, MatchExplanation
from qa.ingest.passages import Passage

if TYPE_CHECKING:
    from qa.tools.corpus_jobs import FileStatus, Job


# Markdown's special characters, plus those of GFM autolinks (: @ .), setext headings (=),
# HTML entities (&) and Streamlit's own syntax (:color[...], :material/...:, $math$).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=&@^])")


_LINE_BREAKS = re.compile(r"[ \t]*(?:\r\n|\r|\n)\s*")


LABELS = {
    "fr": {
        "found": "Réponse trouvée",
        "likely": "Réponse probable",
        "unsure": "Pas de réponse dans le corpus",
        "source": "Source",
        "maybe": "Passage peut-être utile",
        "passage": "Passage",
        "context": "Voir dans le contexte",
        "here": "Ce passage",
        "missing": "Référence absente de l'article.",
        "refused": "Question refusée",
        "thanks": "Merci, votre avis est enregistré.",
        "not_saved": "Avis non enregistré",
        "answer": "Réponse",
        "confidence": "confiance",
        "sentence": "Phrase",
        "notes": "Notes",
        "also": "Dit aussi dans",
        "understood": "Compris comme",
        "why": "Pourquoi ce passage ?",
        "terms": "Termes de la question trouvés",
        "no_terms": "aucun terme de la question (trouvé par le sens)",
        "dense": "Sémantique (dense)",
        "lexical": "Lexical (BM25)",
        "reader": "Lecteur",
        "rank": "rang",
        "not_found": "non trouvé",
        "not_read": "non lu",
        "new_topic": "Nouveau sujet",
        "new_topic_help": "Les questions suivantes ne s'appuient plus sur les précédentes",
        "topic_started": "Nouveau sujet",
        "searching": "Recherche dans le corpus…",
        "ask": "Votre question…",
        "intro": "Posez une question sur le corpus (en français ou en anglais) ; la réponse est une phrase du corpus, avec ses sources.",
        "conversation": "Conversation",
        "sources": "Sources",
        "clear": "Effacer la conversation",
        "export": "Exporter en Markdown",
        "empty": "la question est vide",
        "too_long": "la question fait {length} caractères ; la limite est {limit}",
        "replaying": "Reprise de la conversation…",
    },
    "en": {
        "found": "Answer found",
        "likely": "Likely answer",
        "unsure": "No answer in the corpus",
        "source": "Source",
        "maybe": "Possibly useful passage",
        "passage": "Passage",
        "context": "Show in context",
        "here": "This passage",
        "missing": "Reference missing from the article.",
        "refused": "Question refused",
        "thanks": "Thank you, your feedback is saved.",
        "not_saved": "Feedback not saved",
        "answer": "Answer",
        "confidence": "confidence",
        "sentence": "Sentence",
        "notes": "Notes",
        "also": "Also said in",
        "understood": "Understood as",
        "why": "Why this passage?",
        "terms": "Question terms found",
        "no_terms": "no term of the question (found by meaning)",
        "dense": "Semantic (dense)",
        "lexical": "Lexical (BM25)",
        "reader": "Reader",
        "rank": "rank",
        "not_found": "not found",
        "not_read": "not read",
        "new_topic": "New topic",
        "new_topic_help": "The next questions no longer lean on the earlier ones",
        "topic_started": "New topic",
        "searching": "Searching the corpus…",
        "ask": "Your question…",
        "intro": "Ask the corpus a question (in French or English); the answer is a sentence of the corpus, with its sources.",
        "conversation": "Conversation",
        "sources": "Sources",
        "clear": "Clear the conversation",
        "export": "Export as Markdown",
        "empty": "the question is empty",
        "too_long": "the question is {length} characters long; the limit is {limit}",
        "replaying": "Restoring the conversation…",
    },
}


# The confidence (probability that the sentence shown is right) from which an answer is "found".
FOUND_CONFIDENCE = 0.7


def escape_markdown(text: str) -> str:
    """``text`` as Markdown that displays literally: punctuation escaped, line breaks kept as hard breaks."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    return _LINE_BREAKS.sub("  \n", escaped)


def highlighted(text: str, span: tuple[int, int] | None, answer: tuple[int, int] | None = None) -> str:
    """``text`` escaped for Markdown, with the characters in ``span`` (if any) highlighted and,
    inside them, those of ``answer`` (the short answer) in bold."""
    if span is None:
        return escape_markdown(text)
    start, end = span
    inner = escape_markdown(text[start:end])
    if answer is not None and start <= answer[0] < answer[1] <= end:
        a, b = answer
        inner = f"{escape_markdown(text[start:a])}**{escape_markdown(text[a:b])}**{escape_markdown(text[b:end])}"
    return f"{escape_markdown(text[:start])}:orange-background[{inner}]{escape_markdown(text[end:])}"


def labels_for(language: str) -> dict[str, str]:
    """The UI's words in ``language`` (French when it is not one the UI speaks)."""
    return LABELS.get(language, LABELS["fr"])


def page_language(questions: list[str]) -> str:
    """The page's language: that of the latest question with words (French before any)."""
    said = [q for q in questions if q.strip()]
    return question_language(said[-1]) if said else "fr"


def colon(language: str) -> str:
    """What follows a label: « Réponse : » in French, "Answer:" in English."""
    return " :" if language == "fr" else ":"


def refusal(error: QuestionError, language: str) -> str:
    """Why a question was refused, in ``language`` (the label, then the reason)."""
    labels = labels_for(language)
    reason = labels[error.reason].format(length=error.length, limit=error.limit) if error.reason in labels else str(error)
    return f"{labels['refused']}{colon(language)} {reason}"


def understood_line(answer: Answer) -> str | None:
    """« Compris comme : … » (escaped Markdown) when the question was completed from the conversation, else None."""
    if not answer.completed:
        return None
    return f"{labels_for(answer.language)['understood']}{colon(answer.language)} {escape_markdown(answer.understood_as)}"


def explanation_markdown(passage: Passage, why: MatchExplanation, language: str) -> str:
    """Why a passage was shown (Markdown): the question's terms it holds, highlighted in its text,
    then its dense and lexical scores with their ranks and the reader's margin."""
    labels = labels_for(language)
    pieces, at = [], 0
    for start, end in why.spans:
        pieces += [escape_markdown(passage.text[at:start]), f":blue-background[{escape_markdown(passage.text[start:end])}]"]
        at = end
    pieces.append(escape_markdown(passage.text[at:]))
    found = ", ".join(escape_markdown(t) for t in why.terms) or labels["no_terms"]
    lexical = f"{why.lexical:.2f} ({labels['rank']} {why.lexical_rank})" if why.lexical_rank else labels["not_found"]
    reader = labels["not_read"] if why.reader is None else f"{why.reader:+.2f}"
    scores = (f"{labels['dense']} {why.dense:.3f} ({labels['rank']} {why.dense_rank}) · "
              f"{labels['lexical']} {lexical} · {labels['reader']} {reader}")
    return f"**{labels['terms']}**{colon(language)} {found}  \n{scores}\n\n{''.join(pieces)}"


def passage_place(passage: Passage, escape: Callable[[str], str] = escape_markdown) -> str:
    """Where a passage is, as Markdown escaped by ``escape``: document title › section (, p. 3 in a PDF)."""
    page = f", {escape(passage.page_label)}" if passage.page_label else ""
    return f"{escape(passage.title)} › {escape(passage.section)}{page}"


def confidence_cue(answer: Answer) -> str:
    """A badge saying whether the corpus answers and how surely (Markdown): "found" at a
    confidence of FOUND_CONFIDENCE or more, "likely" below, "no answer" when citeqa abstains.
    Without a reader there is no confidence: the best passage's score is shown instead."""
    labels = labels_for(answer.language)
    if answer.confidence is not None:
        figure = f" · {labels['confidence']} {answer.confidence:.0%}" if answer.answered else ""
    else:
        figure = f" · score {answer.passages[0].score:.2f}" if answer.passages else ""
    if not answer.answered:
        return f":orange-badge[:material/help: {labels['unsure']}{figure}]"
    if answer.confidence is None or answer.confidence >= FOUND_CONFIDENCE:
        return f":green-badge[:material/check_circle: {labels['found']}{figure}]"
    return f":blue-badge[:material/info: {labels['likely']}{figure}]"


# In the export, only what Markdown would take for structure is escaped, so that it reads as plain
# text: emphasis and code marks, HTML, a link's "](", and the marks of headings, quotes, lists and
# tables at the start of a line.
_INLINE_SPECIAL = re.compile(r"([\\`*_<>|])|\](?=\()|&(?=#?\w+;)")
_LINE_START_SPECIAL = re.compile(r"^(\s*(?:\d+)?)([#>+=-](?<!\d[#>+=-])|(?<=\d)[.)])", re.MULTILINE)


def plain_markdown(text: str) -> str:
    """``text`` as Markdown that displays literally and still reads as plain text."""
    escaped = _INLINE_SPECIAL.sub(lambda m: "\\" + m.group(), text)
    return _LINE_START_SPECIAL.sub(lambda m: m.group(1) + "\\" + m.group(2), escaped)


def conversation_markdown(messages: list[dict]) -> str:
    """The conversation as a Markdown document that reads as plain text: each question (and how
    it was understood, when completed), its answer with its confidence, or why there is none, or
    why the question was refused; the passage with its place and the footnotes' references. The
    chat's ``messages``: {"role": "user", "content"}, then {"answer"} or {"error"}; {"role": "topic"}."""
    parts, number = ["# citeqa"], 0
    for message in messages:
        if message.get("role") == "topic":
            parts.append("---")
        elif message.get("role") == "user":
            number += 1
            parts.append(f"## {number}. {plain_markdown(message['content'])}")
        elif "error" in message:
            parts.append(f"*{plain_markdown(message['error'])}*")
        elif "answer" in message:
            parts.extend(_answer_markdown(message["answer"]))
    return "\n\n".join(parts) + "\n"


def _answer_markdown(answer: Answer) -> list[str]:
    labels = labels_for(answer.language)
    after = colon(answer.language)
    parts = []
    if answer.completed:
        parts.append(f"*{labels['understood']}{after} {plain_markdown(answer.understood_as)}*")
    confidence = "" if answer.confidence is None else f" ({labels['confidence']} {answer.confidence:.0%})"
    if answer.answered:
        verdict = labels["found"] if answer.confidence is None or answer.confidence >= FOUND_CONFIDENCE else labels["likely"]
        parts.append(f"**{verdict}**{confidence}")
        if answer.answer_text:
            parts.append(f"**{labels['answer']}**{after} {plain_markdown(answer.answer_text)}")
        parts.append(f"**{labels['sentence']}**{after} {plain_markdown(answer.answer_sentence or '')}")
    else:
        parts.append(f"**{labels['unsure']}**{confidence}{after} {plain_markdown(answer.message or '')}")
    if answer.passages:
        first = answer.passages[0]
        kind = labels["source"] if answer.answered else labels["maybe"]
        parts.append(f"{kind}{after} {passage_place(first.passage, plain_markdown)} · score {first.score:.2f}")
        parts.append("> " + plain_markdown(first.passage.text).replace("\n", "\n> "))
        notes = [f"- [{f.number}] {plain_markdown(f.reference or labels['missing'])}" for f in first.footnotes]
        if notes:
            parts.append(f"{labels['notes']}{after}\n\n" + "\n".join(notes))
        for source in first.same_fact:
            parts.append(f"{labels['also']}{after} {passage_place(source.passage, plain_markdown)}")
            parts.append("> " + plain_markdown(source.passage.text[source.sentence[0] : source.sentence[1]]))
    return parts


# What a file of an upload or removal has become.
FILE_STATUS = {
    "queued": ":material/schedule: en attente",
    "indexing": ":material/sync: indexation…",
    "indexed": ":green[:material/check: indexé]",
    "duplicate": ":blue[:material/content_copy: déjà dans le corpus]",
    "refused": ":red[:material/block: refusé]",
    "removing": ":material/sync: retrait…",
    "removed": ":green[:material/check: retiré]",
}


def job_progress(job: Job) -> tuple[float, str]:
    """How far an upload or removal is (0 to 1: its files checked, then its texts embedded) and
    one line saying it, as escaped Markdown."""
    if job.state == "failed":
        return 1.0, f"Échec de la reconstruction : {escape_markdown(job.message or '')} — l'index en service est inchangé."
    if job.finished:
        return 1.0, "Terminé."
    if job.to_embed:
        return 0.1 + 0.9 * job.embedded / job.to_embed, f"Construction de l'index… {job.embedded}/{job.to_embed} textes encodés"
    return (0.05, "Vérification des fichiers…") if job.state == "running" else (0.0, "En attente…")


def file_status_line(file: FileStatus) -> str:
    """A file of an upload or removal, what became of it and why, as escaped Markdown."""
    detail = f" — {escape_markdown(file.detail)}" if file.detail else ""
    return f"{escape_markdown(file.name)} : {FILE_STATUS[file.status]}{detail}"
