"""``passages.json`` of an index folder: the documents, and the passages stored in compact columns
(one per field of Passage)."""

from __future__ import annotations

from dataclasses import fields
from itertools import islice

from qa.ingest.documents import Document
from qa.ingest.passages import Passage
def passages_payload(documents: tuple[Document, ...], passages: list[Passage]) -> dict:
    return {
        "documents": [
            {"doc_id": d.doc_id, "title": d.title, "references": {n: r.text for n, r in d.references.items()}}
            for d in documents
        ],
        "passages": {f.name: column([getattr(p, f.name) for p in passages]) for f in fields(Passage)},
    }


def column(values: list) -> dict:
    """One field of every passage, laid out to parse fast: repeated strings (document, title,
    section, kind) as a table of distinct values and one code per passage, tuples (footnotes,
    sentence spans, sentence footnotes) flattened with one length per passage, their items
    themselves as a column when they are tuples; anything else as a plain list."""
    if values and all(isinstance(v, str) for v in values):
        distinct = list(dict.fromkeys(values))
        if len(distinct) <= len(values) // 2:
            code = {value: number for number, value in enumerate(distinct)}
            return {"categories": distinct, "codes": [code[v] for v in values]}
    if values and all(isinstance(v, tuple) for v in values):
        items = [item for value in values for item in value]
        nested = bool(items) and all(isinstance(item, tuple) for item in items)
        return {"lengths": [len(v) for v in values], "items": column(items) if nested else items}
    return {"values": values}


def column_values(column: dict) -> list:
    """The per-passage values of a column written by ``column``."""
    if "values" in column:
        return column["values"]
    if "categories" in column:
        categories = column["categories"]
        return [categories[code] for code in column["codes"]]
    items = column["items"]
    items = iter(column_values(items) if isinstance(items, dict) else items)
    return [tuple(islice(items, length)) for length in column["lengths"]]


def passages_from_json(columns: dict) -> list[Passage]:
    """The passages of a ``passages.json`` (format 2: one column per field of Passage)."""
    names = [f.name for f in fields(Passage) if f.name in columns]
    values = [column_values(columns[name]) for name in names]
    if names == [f.name for f in fields(Passage)]:
        return [Passage(*row) for row in zip(*values)]
    return [Passage(**dict(zip(names, row))) for row in zip(*values)]
