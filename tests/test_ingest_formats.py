"""Reading the files people have: PDF, Word, saved Wikipedia and other web pages, text without a
blank line after its title; every other file, or one that cannot be read, named in a warning.

Real files written by others are in tests/data/formats/ (README.md there says whose); files with
known answers are made here (reportlab, python-docx) or by tests/article_files.py.
"""

from __future__ import annotations

import io
import json
import os
import signal
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from article_files import write_docx, write_pdf, write_wikipedia_html
from conftest import CORPUS_FILE, run_command
from qa.engine import build, open_engine
from qa.ingest.converted import ReadLimits
from qa.ingest.corpus import read_corpus
from qa.ingest.documents import CorpusFileError
from qa.ingest.passages import passages_for
from qa.ingest.readers import read_document
from qa.store.folder import index_status

DATA = Path(__file__).parent / "data" / "formats"
ARTICLE = read_document(CORPUS_FILE)


def text_paragraphs(document) -> list[str]:
    return [" ".join(p.text.split()) for s in document.sections for p in s.paragraphs if p.kind == "text"]


def report_pdf(path: Path) -> Path:
    """Three printed pages as a word processor lays them out: a running header and a page number
    on each, a title and headings in a larger font, paragraphs broken in mid-sentence, a word
    hyphenated across two lines, and a paragraph that goes on from page 2 to page 3."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pages = [
        [("title", "Le cosmodrome de Baïkonour"), ("h", "Histoire"),
         ("p", ["Le cosmodrome de Baïkonour fut construit en 1955 dans la steppe kazakhe pour", "les essais de missiles soviétiques."]),
         ("p", ["Spoutnik 1 y fut lancé le 4 octobre 1957, premier satellite artificiel de la", "Terre."])],
        [("h", "Le bail russe"),
         ("p", ["Depuis 1994, la Russie loue le site au Kazakhstan pour 115 millions de dollars par", "an, un bail prolongé jusqu'en 2050."]),
         ("p", ["Les lancements habités du programme Soyouz partent de l'aire de lancement numéro 1,", "appelée « départ de Gagarine », où la fusée est dressée deux jours avant le décol-"])],
        [("p", ["lage. Elle est acheminée couchée sur un wagon depuis le hall d'assemblage, à trois", "kilomètres de là."]),
         ("h", "La ville"),
         ("p", ["La ville voisine de Baïkonour compte environ 76 000 habitants, administrés par la", "Russie."])],
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.setTitle("Le cosmodrome de Baïkonour")
    for number, blocks in enumerate(pages, start=1):
        pdf.setFont("Helvetica", 8)
        pdf.drawString(72, 800, "Rapport sur Baïkonour — édition 2024")
        pdf.drawCentredString(297, 30, f"Page {number} sur {len(pages)}")
        y = 760
        for kind, content in blocks:
            if kind == "p":
                pdf.setFont("Helvetica", 11)
                for line in content:
                    pdf.drawString(72, y, line)
                    y -= 14
                y -= 10
            else:
                pdf.setFont("Helvetica-Bold", 18 if kind == "title" else 14)
                pdf.drawString(72, y, content)
                y -= 26
        pdf.showPage()
    pdf.save()
    return path


# --- PDF ---------------------------------------------------------------------------------------

def test_a_pdf_is_read_as_paragraphs_with_their_pages_without_headers_or_page_numbers(tmp_path):
    document = read_document(report_pdf(tmp_path / "baikonour.pdf"))
    assert document.title == "Le cosmodrome de Baïkonour"
    assert [s.title for s in document.sections] == ["Histoire", "Le bail russe", "La ville"]
    paragraphs = [(p.page, p.text) for s in document.sections for p in s.paragraphs]
    assert paragraphs[0] == (1, "Le cosmodrome de Baïkonour fut construit en 1955 dans la steppe kazakhe pour les essais de missiles soviétiques.")
    assert (2, "Depuis 1994, la Russie loue le site au Kazakhstan pour 115 millions de dollars par an, un bail prolongé jusqu'en 2050.") in paragraphs
    across = next(text for page, text in paragraphs if text.startswith("Les lancements habités"))
    assert "deux jours avant le décollage. Elle est acheminée" in across  # hyphen joined, across the page break
    assert [page for page, text in paragraphs] == [1, 1, 2, 2, 3]
    everything = " ".join(text for _, text in paragraphs)
    assert "Rapport sur" not in everything and "Page 2" not in everything and "sur 3" not in everything


def test_real_pdfs_are_read_page_by_page_and_an_encrypted_one_is_refused():
    latex = read_document(DATA / "pdflatex-4-pages.pdf")  # one paragraph of blind text over 4 pages
    assert [p.page for p in passages_for(latex, 1000)] == [1] * 5 + [2] * 5 + [3] * 5 + [4] * 3
    texts = text_paragraphs(latex)
    assert texts[0].startswith("Hello, here is some text without a meaning.")
    assert not any(text.strip().isdigit() for text in texts)  # the page numbers are gone
    google = read_document(DATA / "google-doc-document.pdf")
    assert "Beautiful is better than ugly." in " ".join(text_paragraphs(google))
    with pytest.raises(CorpusFileError, match="encrypted PDF") as refused:
        read_document(DATA / "libreoffice-writer-password.pdf")
    assert "libreoffice-writer-password.pdf" in str(refused.value)


def test_the_article_as_a_pdf_keeps_every_paragraph_and_reference(tmp_path):
    write_pdf(ARTICLE, tmp_path / "article.pdf")
    document = read_document(tmp_path / "article.pdf")
    assert document.title == ARTICLE.title
    assert [s.title for s in document.sections][1:] == [s.title for s in ARTICLE.sections][1:]
    read = text_paragraphs(document)
    assert all(" ".join(p.split()).replace("\u00a0", " ") in [r.replace("\u00a0", " ") for r in read] for p in text_paragraphs(ARTICLE))
    assert sorted(document.references) == sorted(ARTICLE.references)


# --- Word -----------------------------------------------------------------------------------------

def test_a_word_document_has_its_headings_as_sections_and_its_footnotes_as_references(tmp_path):
    write_docx(ARTICLE, tmp_path / "article.docx")
    document = read_document(tmp_path / "article.docx")
    assert document.title == ARTICLE.title
    assert [s.title for s in document.sections] == [s.title for s in ARTICLE.sections]
    assert text_paragraphs(document) == text_paragraphs(ARTICLE)  # the markers [n] in place
    assert {n: r.text for n, r in document.references.items()} == {n: r.text for n, r in ARTICLE.references.items()}
    assert document.sections[0].paragraphs[0].kind == "infobox" and "Longueur 6\u00a0846\u00a0km" in document.sections[0].paragraphs[0].text


# --- HTML -----------------------------------------------------------------------------------------

def test_a_saved_french_wikipedia_page_reads_as_its_text_copy(tmp_path):
    write_wikipedia_html(ARTICLE, tmp_path / "article.html")
    document = read_document(tmp_path / "article.html")
    assert document.title == ARTICLE.title
    assert [s.title for s in document.sections] == [s.title for s in ARTICLE.sections]
    assert text_paragraphs(document) == text_paragraphs(ARTICLE)
    assert {n: r.text for n, r in document.references.items()} == {n: r.text for n, r in ARTICLE.references.items()}
    assert document.sections[0].paragraphs[0].kind == "infobox"
    everything = " ".join(p.text for s in document.sections for p in s.paragraphs)
    for chrome in ("modifier le code", "Accueil", "Rechercher", "Relations bilatérales", "Portail", "Catégories", "confidentialité", "↑"):
        assert chrome not in everything


def test_a_real_wikipedia_page_keeps_its_text_and_notes_without_its_chrome():
    document = read_document(DATA / "en.wikipedia.org.tsne.html")
    assert document.title == "t-distributed stochastic neighbor embedding"
    assert [s.title for s in document.sections][:3] == ["Introduction", "Details", "Software"]
    lead = text_paragraphs(document)[0]
    assert lead.startswith("T-distributed Stochastic Neighbor Embedding (t-SNE) is a machine learning algorithm")
    assert "[1]" in lead
    assert document.references[1].text.startswith("van der Maaten, L.J.P.; Hinton, G.E. (Nov 2008).")
    everything = " ".join(p.text for s in document.sections for p in s.paragraphs)
    for chrome in ("[edit]", "Machine learning and data mining", "Retrieved from", "Jump to navigation", "^ a b"):
        assert chrome not in everything


def test_another_web_page_gives_its_main_text_and_a_template_page_is_refused():
    document = read_document(DATA / "soundofscience.fr.1927.html")
    assert document.title == "Une candidature collective à la présidence du HCERES"
    texts = text_paragraphs(document)
    assert texts[0].startswith("En réaction à la candidature du conseiller recherche d’Emmanuel Macron, Thierry Coulhon")
    assert any("plus de 2500 chercheur" in t for t in texts)
    with pytest.raises(CorpusFileError, match="template") as refused:
        read_document(DATA / "lanouvellerepublique.fr.martin.html")
    assert "lanouvellerepublique.fr.martin.html" in str(refused.value)


def test_a_script_in_a_page_is_never_text(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html><head><title>Note</title><script>alert('x')</script></head><body><article><h1>Note</h1>"
                    + "<p>Le cosmodrome de Baïkonour est loué par la Russie au Kazakhstan jusqu'en 2050, pour un loyer annuel "
                      "de 115 millions de dollars versé par Moscou à Astana.</p><p><script>document.cookie</script>"
                      "Le site compte quinze aires de lancement, dont celle de Gagarine, et des dizaines de halls d'assemblage.</p>"
                    + "</article></body></html>", "utf-8")
    everything = " ".join(text_paragraphs(read_document(page)))
    assert "Baïkonour" in everything and "alert" not in everything and "cookie" not in everything


# --- text ---------------------------------------------------------------------------------------

def test_a_text_without_a_blank_line_after_its_title_is_read(tmp_path):
    path = tmp_path / "baikonour.txt"
    path.write_text("Baïkonour\nLe cosmodrome est loué par la Russie jusqu'en 2050.\nIl fut construit en 1955.\n", "utf-8")
    document = read_document(path)
    assert document.title == "Baïkonour"
    assert text_paragraphs(document) == ["Le cosmodrome est loué par la Russie jusqu'en 2050. Il fut construit en 1955."]
    assert path.read_text("utf-8")[document.sections[0].paragraphs[0].start:].startswith("Le cosmodrome")


def test_the_sources_of_an_article_may_be_in_any_format(tmp_path):
    corpus = tmp_path / "corpus"
    sources = corpus / f"{CORPUS_FILE.stem}.refs"
    sources.mkdir(parents=True)
    (corpus / CORPUS_FILE.name).write_bytes(CORPUS_FILE.read_bytes())
    (sources / "8.html").write_bytes((DATA / "soundofscience.fr.1927.html").read_bytes())
    write_docx(read_document(CORPUS_FILE), sources / "9.docx")
    report_pdf(sources / "10.pdf")
    (sources / "11.md").write_text("# Ria Novosti\n\nLa frontière sera démarquée en quinze ans.\n", "utf-8")
    (sources / "12.odt").write_bytes(b"PK\x03\x04")
    read = read_corpus(corpus)
    assert [m.split(": ", 1)[1] for m in read.skipped] == ["unsupported file type '.odt' (citeqa reads .docx, .htm, .html, .md, .pdf, .txt)"]
    added = {s.title.split("]")[0] + "]": s for s in read.documents[0].sections if s.title.startswith("[")}
    assert sorted(added) == ["[10]", "[11]", "[8]", "[9]"]
    for number, section in added.items():
        assert all(p.kind == "source" and p.footnotes == (int(number[1:-1]),) for p in section.paragraphs)
    assert added["[8]"].paragraphs[0].text.startswith("En réaction à la candidature")  # no title line: the page's text
    assert added["[8]"].paragraphs[0].file == f"{CORPUS_FILE.stem}.refs/8.html"
    assert [p.page for p in added["[10]"].paragraphs] == [1, 1, 2, 2, 3]  # the fourth goes on to page 3
    assert [p.text for p in added["[11]"].paragraphs] == ["# Ria Novosti", "La frontière sera démarquée en quinze ans."]


# --- files that cannot be read --------------------------------------------------------------------

def zip_bomb() -> bytes:
    """A DOCX-named zip of 2 KB that declares 300 MB of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("word/document.xml", "w", force_zip64=True) as member:
            for _ in range(300):
                member.write(bytes(1024 * 1024))
    return buffer.getvalue()


def test_every_file_that_cannot_be_read_is_named_with_its_reason(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "article.txt").write_bytes(CORPUS_FILE.read_bytes())
    (corpus / "notes.xlsx").write_bytes(b"PK\x03\x04 not read")
    (corpus / "photo.pdf").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    (corpus / "bomb.docx").write_bytes(zip_bomb())
    (corpus / "letter.docx").write_bytes(b"Dear reader, this is plain text named .docx")
    (corpus / "long.pdf").write_bytes((DATA / "pdflatex-4-pages.pdf").read_bytes())
    (corpus / "secret.pdf").write_bytes((DATA / "libreoffice-writer-password.pdf").read_bytes())
    (corpus / "misc").mkdir()
    (corpus / ".DS_Store").write_bytes(b"\x00\x00")
    read = read_corpus(corpus, ReadLimits(max_pages=3))
    assert [d.doc_id for d in read.documents] == ["article"]
    reasons = {Path(message.split(":")[0]).name: message for message in read.skipped}
    assert set(reasons) == {"notes.xlsx", "photo.pdf", "bomb.docx", "letter.docx", "long.pdf", "secret.pdf", "misc"}
    assert "unsupported file type '.xlsx'" in reasons["notes.xlsx"]
    assert "cannot be read as a PDF" in reasons["photo.pdf"]
    assert "would unpack to 315 MB" in reasons["bomb.docx"]
    assert "not a DOCX zip archive" in reasons["letter.docx"]
    assert "4 pages, more than the limit of 3 (QA_MAX_PAGES)" in reasons["long.pdf"]
    assert "encrypted" in reasons["secret.pdf"]
    assert "a folder, not read" in reasons["misc"]
    assert "notes.xlsx" in read.files and ".DS_Store" not in read.files  # staleness sees what was skipped
    small = read_corpus(corpus, ReadLimits(max_file_bytes=10_000))
    assert any("article.txt" in m and "QA_MAX_FILE_BYTES" in m for m in small.skipped)


# --- answers from each format, through the real index ---------------------------------------------

def test_answers_from_a_pdf_a_word_file_and_a_web_page_cite_their_page_and_footnote(private_corpus, embedder, capsys):
    corpus = private_corpus.corpus
    report_pdf(corpus / "baikonour.pdf")
    sources = corpus / f"{CORPUS_FILE.stem}.refs"
    sources.mkdir()
    report_pdf(sources / "8.pdf")  # the full text of the article's reference [8], as a PDF
    (corpus / "notes.xlsx").write_bytes(b"PK\x03\x04")
    assert "notes.xlsx added" in index_status(private_corpus).stale
    report = build(private_corpus, embedder)
    assert report.documents == 2 and any("notes.xlsx" in m for m in report.skipped)
    engine = open_engine(private_corpus, embedder)

    answer = engine.ask("Combien la Russie paie-t-elle par an pour louer Baïkonour ?")
    top = answer.passages[0].passage
    assert "115 millions de dollars" in answer.answer_sentence
    assert (top.page, top.file) in {(2, "baikonour.pdf"), (2, f"{CORPUS_FILE.stem}.refs/8.pdf")}

    answer = engine.ask("En quelle année Spoutnik 1 fut-il lancé ?", articles=frozenset({CORPUS_FILE.stem}))
    top = answer.passages[0].passage
    assert top.kind == "source" and top.file == f"{CORPUS_FILE.stem}.refs/8.pdf" and top.page == 1
    assert [f.number for f in answer.answer_footnotes] == [8]

    status, out, _ = run_command(capsys, "--corpus", corpus, "--index", private_corpus.index, "ask", "--json",
                                 "Combien d'habitants compte la ville de Baïkonour ?")
    passage = json.loads(out)["passages"][0]
    assert status == 0 and passage["page"] == 3 and passage["file"] in ("baikonour.pdf", f"{CORPUS_FILE.stem}.refs/8.pdf")
    _, out, _ = run_command(capsys, "--corpus", corpus, "--index", private_corpus.index, "ask", "Combien d'habitants compte la ville de Baïkonour ?")
    assert "› La ville, p. 3)" in out
    _, out, _ = run_command(capsys, "--corpus", corpus, "--index", private_corpus.index, "status", "--json")
    assert any("notes.xlsx" in m and "unsupported file type" in m for m in json.loads(out)["skipped"])


def test_the_article_as_word_and_as_wikipedia_html_answers_with_its_footnotes(private_corpus, embedder):
    corpus = private_corpus.corpus
    (corpus / CORPUS_FILE.name).unlink()
    write_wikipedia_html(ARTICLE, corpus / "kazakhstan-russie.html")
    write_docx(ARTICLE, corpus / "kazakhstan-russie-word.docx")
    build(private_corpus, embedder)
    engine = open_engine(private_corpus, embedder)
    for doc_id in ("kazakhstan-russie", "kazakhstan-russie-word"):
        answer = engine.ask("Quelle est la longueur de la frontière entre le Kazakhstan et la Russie ?", articles=frozenset({doc_id}))
        assert "6 846 km" in answer.answer_sentence.replace("\u00a0", " ") and [f.number for f in answer.answer_footnotes] == [1]
        assert answer.answer_footnotes[0].reference.startswith("Claude Moniquet")
        assert answer.passages[0].passage.file.startswith(doc_id) and answer.passages[0].passage.page is None


def test_a_passage_never_goes_on_to_another_page(tmp_path):
    document = read_document(report_pdf(tmp_path / "baikonour.pdf"))
    passages = passages_for(document, chunk_size=1000)
    assert [p.page for p in passages] == [1, 1, 2, 2, 3, 3]
    assert passages[3].text.endswith("deux jours avant le décollage.")  # the sentence that starts on page 2
    assert passages[4].text == "Elle est acheminée couchée sur un wagon depuis le hall d'assemblage, à trois kilomètres de là."
    assert passages[0].place == "Le cosmodrome de Baïkonour › Histoire, p. 1"


# --- fuzzing: random and damaged files of each type -----------------------------------------------

FUZZ_EXAMPLES = int(os.environ.get("QA_FUZZ_EXAMPLES", "40"))  # docs/measurements.md: a run of 500 a type
FUZZ_SECONDS = 20  # a file taking longer to refuse is a hang


def seed_files(folder: Path) -> dict[str, bytes]:
    """One small valid file of each type, to damage."""
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(folder / "seed.pdf"), pageCompression=0)  # uncompressed: damage reaches the text operators
    pdf.setTitle("Baïkonour")
    for page in range(2):
        pdf.drawString(72, 800, "Rapport — en-tête")
        pdf.drawString(72, 700, f"Le cosmodrome de Baïkonour est loué jusqu'en 2050, page {page + 1}.")
        pdf.showPage()
    pdf.save()
    short = read_document(CORPUS_FILE)
    write_docx(short, folder / "seed.docx")
    write_wikipedia_html(short, folder / "seed.html")
    return {".pdf": (folder / "seed.pdf").read_bytes(), ".docx": (folder / "seed.docx").read_bytes(),
            ".html": (folder / "seed.html").read_bytes(), ".txt": CORPUS_FILE.read_bytes()[:3000],
            ".htm": (DATA / "soundofscience.fr.1927.html").read_bytes()}


def damaged(seed: bytes, suffix: str, data) -> bytes:
    """The seed with random damage: bytes changed, a cut, random bytes inserted, a part repeated;
    a DOCX's XML damaged inside a valid zip."""
    if suffix == ".docx" and data.draw(st.booleans()):
        with zipfile.ZipFile(io.BytesIO(seed)) as archive:
            members = {info.filename: archive.read(info) for info in archive.infolist()}
        name = data.draw(st.sampled_from(sorted(members)))
        members[name] = damaged(members[name], ".xml", data)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            for member, content in members.items():
                archive.writestr(member, content)
        return buffer.getvalue()
    raw = bytearray(seed)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, max(0, len(raw) - 1)))
        action = data.draw(st.sampled_from(["flip", "cut", "insert", "repeat"]))
        if action == "flip" and raw:
            raw[at] = data.draw(st.integers(0, 255))
        elif action == "cut":
            raw = raw[:at] if data.draw(st.booleans()) else raw[:at] + raw[at + data.draw(st.integers(1, 500)):]
        elif action == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=64))
        else:
            raw[at:at] = raw[at : at + data.draw(st.integers(1, 2000))] * data.draw(st.integers(2, 20))
    return bytes(raw)


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return seed_files(tmp_path_factory.mktemp("seeds"))


@pytest.mark.parametrize("suffix", [".pdf", ".docx", ".html", ".htm", ".txt"])
def test_random_and_damaged_files_are_read_or_refused_with_a_message(tmp_path, seeds, suffix):
    tried = Counter()

    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(data=st.data())
    def read_or_refuse(data):
        raw = data.draw(st.binary(max_size=3000)) if data.draw(st.booleans()) else damaged(seeds[suffix], suffix, data)
        path = tmp_path / f"fuzzed{suffix}"
        path.write_bytes(raw)
        tried["files"] += 1
        signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError(f"{suffix} file still being read after {FUZZ_SECONDS} s")))
        signal.alarm(FUZZ_SECONDS)
        try:
            document = read_document(path)
            assert document.sections and document.title
            tried["read"] += 1
        except CorpusFileError as refusal:
            assert str(path) in str(refusal)
            tried["refused"] += 1
        finally:
            signal.alarm(0)

    read_or_refuse()
    print(f"fuzzed {suffix}: {dict(tried)}")  # pytest -s shows the counts (docs/measurements.md)
    assert tried["files"] == tried["read"] + tried["refused"] >= FUZZ_EXAMPLES * 0.9
