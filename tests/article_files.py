"""An article (``.txt`` or ``.md``) written as the files people have: a PDF (reportlab, with a
running header and page numbers), a Word document (python-docx, its [n] markers as real Word
footnotes) and a French Wikipedia page as the browser saves it (MediaWiki's markup: infobox,
edit links, reference markers and list, navigation box, menus and footer).

The tests use it for files whose answers are known; ``docs/measurements.md`` for the formats'
figures on piaf-dev::

    python tests/article_files.py eval/piaf-dev/corpus /tmp/piaf-pdf pdf
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from qa.ingest.documents import LEAD_SECTION, Document  # noqa: E402
from qa.ingest.readers import read_document  # noqa: E402

FONTS = (Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"), Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"))
_MARKER = re.compile(r"\[(\d+)\]")


def body(document: Document):
    """(section title, paragraphs) of the article's text, without its reference list."""
    for section in document.sections:
        paragraphs = [p for p in section.paragraphs if p.kind in ("text", "infobox")]
        if paragraphs:
            yield section.title, paragraphs


def write_pdf(document: Document, path: Path) -> None:
    """The article as a PDF: the title, its sections in bold, the notes last; on every page a
    running header (the title) and the page number at the bottom."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.platypus import Paragraph, SimpleDocTemplate

    regular, bold = "Helvetica", "Helvetica-Bold"
    if all(f.exists() for f in FONTS):  # Helvetica has no Cyrillic nor œ in some viewers' text layer
        pdfmetrics.registerFont(TTFont("DejaVu", str(FONTS[0])))
        pdfmetrics.registerFont(TTFont("DejaVu-Bold", str(FONTS[1])))
        regular, bold = "DejaVu", "DejaVu-Bold"
    styles = getSampleStyleSheet()
    for name in ("Title", "Heading2", "BodyText"):
        styles[name].fontName = bold if name != "BodyText" else regular

    def page_furniture(canvas, template):
        canvas.saveState()
        canvas.setFont(regular, 8)
        canvas.drawString(72, A4[1] - 40, document.title)
        canvas.drawCentredString(A4[0] / 2, 30, str(canvas.getPageNumber()))
        canvas.restoreState()

    flow = [Paragraph(html.escape(document.title), styles["Title"])]
    for title, paragraphs in body(document):
        if title != LEAD_SECTION:
            flow.append(Paragraph(html.escape(title), styles["Heading2"]))
        for paragraph in paragraphs:
            lines = paragraph.text.split("\n") if paragraph.kind == "infobox" else [paragraph.text]
            flow += [Paragraph(html.escape(line), styles["BodyText"]) for line in lines]
    if document.references:
        flow.append(Paragraph("Notes et références", styles["Heading2"]))
        flow += [Paragraph(html.escape(f"{n}. {r.text}"), styles["BodyText"]) for n, r in sorted(document.references.items())]
    SimpleDocTemplate(str(path), pagesize=A4, title=document.title).build(flow, onFirstPage=page_furniture, onLaterPages=page_furniture)


def write_docx(document: Document, path: Path) -> None:
    """The article as a Word document: Title and Heading 1 styles, the infobox as a table, each
    [n] marker a footnote reference to a footnote holding reference n."""
    import docx
    from docx.opc.constants import RELATIONSHIP_TYPE
    from docx.opc.packuri import PackURI
    from docx.opc.part import Part
    from docx.oxml import OxmlElement
    from docx.oxml.ns import qn

    word = docx.Document()
    word.add_paragraph(document.title, style="Title")
    used: list[int] = []
    for title, paragraphs in body(document):
        if title != LEAD_SECTION:
            word.add_heading(title, level=1)
        for paragraph in paragraphs:
            if paragraph.kind == "infobox":
                lines = paragraph.text.split("\n")
                table = word.add_table(rows=len(lines), cols=1)
                for row, line in zip(table.rows, lines):
                    row.cells[0].text = line
                continue
            out = word.add_paragraph()
            for piece in _MARKER.split(paragraph.text):
                if piece.isdigit() and int(piece) in document.references:
                    used.append(int(piece))
                    run = OxmlElement("w:r")
                    reference = OxmlElement("w:footnoteReference")
                    reference.set(qn("w:id"), piece)
                    run.append(reference)
                    out._p.append(run)
                elif piece.isdigit():
                    out.add_run(f"[{piece}]")
                else:
                    out.add_run(piece)
    notes = "".join(
        f'<w:footnote w:id="{n}"><w:p><w:r><w:t xml:space="preserve">{html.escape(document.references[n].text)}</w:t></w:r></w:p></w:footnote>'
        for n in sorted(set(used))
    )
    blob = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<w:footnotes xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
            '<w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
            '<w:footnote w:type="continuationSeparator" w:id="0"><w:p><w:r><w:continuationSeparator/></w:r></w:p></w:footnote>'
            f"{notes}</w:footnotes>").encode("utf-8")
    part = Part(PackURI("/word/footnotes.xml"), "application/vnd.openxmlformats-officedocument.wordprocessingml.footnotes+xml",
                blob, word.part.package)
    word.part.relate_to(part, RELATIONSHIP_TYPE.FOOTNOTES)
    word.core_properties.title = document.title
    word.save(str(path))


def write_wikipedia_html(document: Document, path: Path) -> None:
    """The article as French Wikipedia's page saved from the browser (Vector 2022 markup)."""
    e = html.escape
    parts = [
        "<!DOCTYPE html><html lang='fr'><head><meta charset='utf-8'>",
        f"<title>{e(document.title)} — Wikipédia</title><meta name='generator' content='MediaWiki 1.44'>",
        "<style>.mw-parser-output{font-size:1em}</style><script>var RLCONF={};</script></head><body>",
        "<div class='vector-header'><nav id='p-navigation'><ul><li><a href='/wiki/Accueil'>Accueil</a></li>"
        "<li><a href='/wiki/Portail:Accueil'>Portails thématiques</a></li><li>Article au hasard</li></ul></nav>",
        "<form id='searchform'><input name='search' placeholder='Rechercher sur Wikipédia'></form></div>",
        "<main id='content'><h1 id='firstHeading' class='firstHeading mw-first-heading'>"
        f"<span class='mw-page-title-main'>{e(document.title)}</span></h1>",
        "<div id='siteSub' class='noprint'>Un article de Wikipédia, l'encyclopédie libre.</div>",
        "<div id='mw-content-text' class='mw-body-content'><div class='mw-content-ltr mw-parser-output' lang='fr' dir='ltr'>",
        "<div class='bandeau-container homonymie'>Pour les articles homonymes, voir Relations.</div>",
    ]
    for title, paragraphs in body(document):
        if title != LEAD_SECTION:
            parts.append(f"<div class='mw-heading mw-heading2'><h2 id='{e(title.replace(' ', '_'))}'>{e(title)}</h2>"
                         "<span class='mw-editsection'><span class='mw-editsection-bracket'>[</span><a href='?action=edit'>modifier</a>"
                         " | <a href='?action=edit&amp;section=1'>modifier le code</a><span class='mw-editsection-bracket'>]</span></span></div>")
        for paragraph in paragraphs:
            if paragraph.kind == "infobox":
                rows = "".join(f"<tr><td>{e(line)}</td></tr>" for line in paragraph.text.split("\n"))
                parts.append(f"<div class='infobox_v3 noarchive'><table>{rows}</table></div>")
            else:
                parts.append(f"<p>{_markers_html(e(paragraph.text))}</p>")
    parts.append("<div class='mw-heading mw-heading2'><h2 id='Notes_et_références'>Notes et références</h2>"
                 "<span class='mw-editsection'>[<a href='?action=edit'>modifier</a>]</span></div>")
    parts.append("<div class='mw-references-wrap mw-references-columns'><ol class='references'>")
    parts += [f"<li id='cite_note-{n}'><span class='mw-cite-backlink noprint'><a href='#cite_ref-{n}_0'>↑</a> "
              f"<sup><a href='#cite_ref-{n}_0'>a</a></sup> et <sup><a href='#cite_ref-{n}_1'>b</a></sup></span> "
              f"<span class='reference-text'>{e(r.text)}</span></li>" for n, r in sorted(document.references.items())]
    parts.append("</ol></div>")
    parts.append("<div class='navbox-container'><table class='navbox'><tr><th>Relations bilatérales</th>"
                 "<td>Allemagne · Chine · États-Unis · France</td></tr></table></div>")
    parts.append("<ul class='bandeau-portail'><li>Portail des relations internationales</li></ul>")
    parts.append("</div></div><div class='printfooter'>Ce document provient de « https://fr.wikipedia.org/ »."
                 "</div><div id='catlinks' class='catlinks'>Catégories : Relations bilatérales</div></main>")
    parts.append("<footer id='footer'><ul><li>La dernière modification de cette page a été faite le 1 janvier 2026.</li>"
                 "<li>Politique de confidentialité</li></ul></footer></body></html>")
    path.write_text("\n".join(parts), "utf-8")


def _markers_html(escaped: str) -> str:
    """Each [n] as Wikipedia writes a reference marker."""
    return _MARKER.sub(lambda m: (f"<sup id='cite_ref-{m.group(1)}_0' class='reference'><a href='#cite_note-{m.group(1)}'>"
                                  f"<span class='cite_crochet'>[</span>{m.group(1)}<span class='cite_crochet'>]</span></a></sup>"), escaped)


WRITERS = {"pdf": write_pdf, "docx": write_docx, "html": write_wikipedia_html}


def convert(source: Path, target: Path, kind: str) -> list[Path]:
    """Every article of a corpus folder written in one format; the written files."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for article in sorted(p for p in source.iterdir() if p.suffix in (".txt", ".md")):
        path = target / f"{article.stem}.{kind}"
        WRITERS[kind](read_document(article), path)
        written.append(path)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a corpus folder of .txt or .md articles")
    parser.add_argument("target", type=Path)
    parser.add_argument("kind", choices=sorted(WRITERS))
    arguments = parser.parse_args()
    print(f"{len(convert(arguments.source, arguments.target, arguments.kind))} files written to {arguments.target}")
