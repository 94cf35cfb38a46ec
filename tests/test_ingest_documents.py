"""Parsing the article and splitting it into passages that keep their place and footnotes."""

from __future__ import annotations

import re

import pytest

from conftest import CORPUS_FILE
from qa.config import Settings
from qa.ingest.documents import LEAD_SECTION, CorpusFileError, parse_article
from qa.ingest.readers import read_document
from qa.ingest.passages import passages_for
from qa.ingest.text import FOOTNOTE_MARKER, sentence_spans

SOURCE = CORPUS_FILE.read_text("utf-8")


@pytest.fixture(scope="module")
def document():
    return read_document(CORPUS_FILE)


def test_the_title_and_the_sections_with_text_are_found(document):
    assert document.title == "Relations entre le Kazakhstan et la Russie"
    headings = [line[: -len("[modifier | modifier le code]")] for line in SOURCE.splitlines() if line.endswith("[modifier | modifier le code]")]
    assert len(headings) == 9
    assert [s.title for s in document.sections] == [
        LEAD_SECTION,
        "Vue d'ensemble",
        "Histoire contemporaine des relations russo-kazakh",
        "Manifestations de 2022 au Kazakhstan",
        "Impact de la guerre d'Ukraine",
        "Accords frontaliers",
        "Notes et références",
    ]  # Annexes, Articles connexes and Liens externes are empty: no section, no passage


def test_the_infobox_is_a_paragraph_of_its_own(document):
    infobox = document.sections[0].paragraphs[0]
    assert infobox.kind == "infobox"
    assert "Longueur 6\u00a0846\u00a0km" in infobox.text
    assert "Un article de Wikipédia" not in " ".join(p.text for s in document.sections for p in s.paragraphs)


def test_the_13_references_have_their_back_link_letters_stripped(document):
    references = document.references
    assert sorted(references) == list(range(1, 14))
    assert references[1].text.startswith("Claude Moniquet, «")
    assert references[2].text.startswith("«\u00a0Le Kazakhstan cherche")
    assert references[5].text.startswith("Georgi Gotev")
    assert references[10].text.startswith("«\u00a0Poutine et le président kazakh")
    assert references[12].text == "Ria Novosti"
    for ref in references.values():
        assert not re.match(r"^[a-z] ", ref.text), ref.text
        assert SOURCE[ref.start : ref.end] == ref.text


def test_every_footnote_marker_is_attached_to_the_passage_that_holds_it(document):
    passages = passages_for(document, Settings().chunk_size)
    for passage in passages:
        assert SOURCE[passage.start : passage.end] == passage.text
        if passage.kind == "reference":
            assert passage.footnotes == (int(passage.id.rsplit("-", 1)[1]),)
        else:
            assert passage.footnotes == tuple(dict.fromkeys(int(n) for n in FOOTNOTE_MARKER.findall(passage.text)))
    markers_in_source = [(m.start(), int(m.group(1))) for m in FOOTNOTE_MARKER.finditer(SOURCE)]
    for offset, number in markers_in_source:
        holders = [p for p in passages if p.start <= offset < p.end]
        assert len(holders) == 1 and number in holders[0].footnotes, (offset, number)


def test_reference_entries_are_passages_of_their_own_kind(document):
    references = [p for p in passages_for(document, Settings().chunk_size) if p.kind == "reference"]
    assert len(references) == 13
    assert references[0].section == "Notes et références"
    assert "Marianne" in references[0].text


@pytest.mark.parametrize("chunk_size", [150, 400, 1000])
def test_passages_never_cut_a_sentence(document, chunk_size):
    passages = [p for p in passages_for(document, chunk_size) if p.kind == "text"]
    for paragraph in (p for s in document.sections for p in s.paragraphs if p.kind == "text"):
        sentences = {paragraph.text[a:b] for a, b in sentence_spans(paragraph.text)}
        inside = [p for p in passages if paragraph.start <= p.start < paragraph.end]
        rebuilt = {p.text[a:b] for p in inside for a, b in p.sentences}
        assert rebuilt == sentences
        squashed = "".join("".join(p.text for p in inside).split())
        assert squashed == "".join(paragraph.text.split())  # nothing lost, nothing repeated


def test_a_footnote_marker_after_the_full_stop_stays_with_its_sentence():
    text = "Le premier fait.[2] Le second fait[3]. Troisième."
    assert [text[a:b] for a, b in sentence_spans(text)] == ["Le premier fait.[2]", "Le second fait[3].", "Troisième."]


def test_markdown_articles_have_a_title_and_sections():
    document = parse_article("# Brésil\n\nLe football.\n\n## Sport\n\nLa Seleção gagne.\n", doc_id="bresil")
    assert document.title == "Brésil"
    assert [s.title for s in document.sections] == [LEAD_SECTION, "Sport"]


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"\xff\xfebinary", "UTF-8"), (b"abc\x00def", "binary"), (b"   \n\n ", "empty")],
)
def test_unreadable_files_are_refused_with_their_name(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(CorpusFileError, match=message) as error:
        read_document(path)
    assert "bad.txt" in str(error.value)
