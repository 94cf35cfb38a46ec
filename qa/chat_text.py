"""What the chat writes, as plain functions of the answers (no Streamlit here): corpus text escaped
for Markdown, the answering sentence highlighted with its short answer, the labels in the
question's language, the confidence's words, the conversation exported as Markdown, and the
progress of an upload or removal."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from qa.answer.result import Answer
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


def passage_place(passage: Passage) -> str:
    """Where a passage is, as escaped Markdown: document title › section (, p. 3 in a PDF)."""
    page = f", {escape_markdown(passage.page_label)}" if passage.page_label else ""
    return f"{escape_markdown(passage.title)} › {escape_markdown(passage.section)}{page}"


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


def conversation_markdown(answers: list[Answer]) -> str:
    """The conversation as a Markdown document: each question, its answer (or why none), the
    passage with its place, and the footnotes with their reference text. Corpus text is escaped."""
    parts = ["# citeqa"]
    for number, answer in enumerate(answers, start=1):
        labels = labels_for(answer.language)
        parts.append(f"## {number}. {escape_markdown(answer.question)}")
        if answer.answered:
            if answer.answer_text:
                parts.append(f"**{labels['answer']}** : {escape_markdown(answer.answer_text)}")
            parts.append(f"**{labels['sentence']}** : {escape_markdown(answer.answer_sentence or '')}")
        else:
            parts.append(f"*{escape_markdown(answer.message or '')}*")
        if answer.passages:
            first = answer.passages[0]
            kind = labels["source"] if answer.answered else labels["maybe"]
            parts.append(f"{kind} : {passage_place(first.passage)} · score {first.score:.2f}")
            parts.append("> " + escape_markdown(first.passage.text).replace("\n", "\n> "))
            notes = [f"- \\[{f.number}\\] {escape_markdown(f.reference or labels['missing'])}" for f in first.footnotes]
            if notes:
                parts.append(f"{labels['notes']} :\n\n" + "\n".join(notes))
            for source in first.same_fact:
                parts.append(f"{labels['also']} : {passage_place(source.passage)}")
                parts.append("> " + escape_markdown(source.passage.text[source.sentence[0] : source.sentence[1]]))
    return "\n\n".join(parts) + "\n"


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
