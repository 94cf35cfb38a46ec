"""How answers and the index status are shown: the JSON objects of ``ask --json``, ``status --json``
and the HTTP API, and the command line's plain-text renderings."""

from __future__ import annotations

from typing import Iterable

from qa.answer.result import Answer, Footnote, MatchExplanation


def answer_json(answer: Answer) -> dict:
    """The --json shape of an answer."""
    return {
        "question": answer.question,
        "understood_as": answer.understood_as or answer.question,
        "answered": answer.answered,
        "answer_text": answer.answer_text,
        "answer_start": span[0] if (span := answer.passages[0].answer if answer.passages else None) else None,
        "answer_end": span[1] if span else None,
        "answer_passage": answer.passages[0].passage.id if answer.passages else None,
        "confidence": None if answer.confidence is None else round(answer.confidence, 3),
        "asks_source": answer.asks_source,
        "answer_sentence": answer.answer_sentence,
        "answer_footnotes": footnotes_json(answer.answer_footnotes),
        "message": answer.message,
        "passages": [
            {
                "id": p.passage.id,
                "rank": p.rank,
                "score": round(p.score, 4),
                "document": p.passage.title,
                "section": p.passage.section,
                "file": p.passage.file or None,
                "page": p.passage.page,
                "text": p.passage.text,
                "answer_sentence": None if p.sentence is None else p.passage.text[p.sentence[0] : p.sentence[1]],
                "footnotes": footnotes_json(p.footnotes),
                "same_fact_in": [
                    {"id": s.passage.id, "document": s.passage.title, "section": s.passage.section,
                     "sentence": s.passage.text[s.sentence[0] : s.sentence[1]],
                     "footnotes": footnotes_json(s.footnotes)}
                    for s in p.same_fact
                ],
                "why": explanation_json(why) if why else None,
            }
            for p, why in zip(answer.passages, answer.explanations or [None] * len(answer.passages))
        ],
    }


def explanation_json(why: MatchExplanation) -> dict:
    """The --json shape of why a passage was shown."""
    return {
        "terms": list(why.terms), "term_spans": [list(span) for span in why.spans],
        "dense": why.dense, "dense_rank": why.dense_rank, "lexical": why.lexical, "lexical_rank": why.lexical_rank,
        "reader": why.reader,
    }


def footnotes_json(footnotes: Iterable[Footnote]) -> list[dict]:
    """The --json shape of footnotes: their number and reference text."""
    return [{"n": f.number, "reference": f.reference} for f in footnotes]


def format_answer(answer: Answer) -> str:
    """A terminal rendering: the short answer, the sentence that says it and its source, then each
    passage (the answering sentence between »» ««) and its notes."""
    lines = [f"Q: {answer.question}"]
    if answer.completed:
        lines.append(f"   ({'compris comme' if answer.language == 'fr' else 'understood as'} : {answer.understood_as})")
    if answer.message:
        lines.append(answer.message + (" Peut-être utile :" if answer.language == "fr" else " Possibly useful:"))
    elif answer.passages:
        first = answer.passages[0].passage
        if answer.answer_text:
            sure = "" if answer.confidence is None else f"  (confidence {answer.confidence:.0%})"
            lines.append(f"A: {' '.join(answer.answer_text.split())}{sure}")
        lines.append(f"   « {' '.join(answer.answer_sentence.split())} » ({first.place}"
                     + "".join(f" [{f.number}]" for f in answer.answer_footnotes) + ")")
    for p in answer.passages:
        text = p.passage.text
        if p.sentence:
            a, b = p.sentence
            text = f"{text[:a]}»» {text[a:b]} ««{text[b:]}"
        lines.append(f"\n[{p.rank}] {p.passage.place}  (score {p.score:.3f})")
        lines.append("    " + " ".join(text.split()))
        lines += [f"    [{f.number}] {f.reference or '(no such reference)'}" for f in p.footnotes]
        for source in p.same_fact:
            a, b = source.sentence
            lines.append(f"    also in {source.passage.place}: {' '.join(source.passage.text[a:b].split())}")
            lines += [f"      [{f.number}] {f.reference or '(no such reference)'}" for f in source.footnotes]
    return "\n".join(lines)


def status_json(status) -> dict:
    manifest = status.manifest
    return {
        "index": str(status.folder),
        "exists": status.exists,
        "building": status.building,
        "problem": status.problem,
        "model": manifest and manifest.model,
        "documents": manifest and manifest.documents,
        "passages": manifest and manifest.passages,
        "built_at": manifest and manifest.built_at,
        "stale": list(status.stale),
        "skipped": list(manifest.skipped) if manifest else [],
    }


def format_status(status) -> str:
    lines = [f"index:     {status.folder}" + ("  (a build is running)" if status.building else "")]
    if status.problem:
        return "\n".join(lines + [f"problem:   {status.problem}"])
    manifest = status.manifest
    lines += [
        f"model:     {manifest.model} ({manifest.dimension} dimensions)",
        f"documents: {manifest.documents}",
        f"passages:  {manifest.passages}",
        f"built:     {manifest.built_at}",
        "stale:     " + ("; ".join(status.stale) + " — run `python -m qa build`" if status.stale else "no, up to date"),
    ]
    lines += [f"skipped:   {message}" for message in manifest.skipped]
    return "\n".join(lines)
