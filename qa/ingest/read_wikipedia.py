"""A Wikipedia page saved from the browser → article text, as the page's plain-text copy reads.

The article is MediaWiki's ``.mw-parser-output``: its headings become sections, its infobox the
first block of the lead (one « label value » line per row), each footnote marker ``[n]`` stays in
its sentence, and the reference list becomes the notes, numbered as the markers are. Menus, edit
links, tables of contents, navigation boxes, banners, figures and footers are not text.
"""

from __future__ import annotations

from pathlib import Path

from lxml import html

from qa.ingest.converted import Block, ConvertedText, article_text, one_line
from qa.ingest.documents import CorpusFileError

_NOT_TEXT = (  # classes (or ids) of what a reader of the page does not read as the article
    "mw-editsection", "navbox", "navbox-container", "toc", "toccolours", "mw-empty-elt", "printfooter",
    "catlinks", "bandeau-portail", "bandeau-container", "bandeau-section", "homonymie", "hatnote",
    "metadata", "noprint", "autres-projets", "thumb", "mw-cite-backlink", "sistersitebox", "reference-cadre",
    "mwe-math-fallback-image-inline", "mwe-math-fallback-image-display", "mw-jump-link", "sidebar", "vertical-navbox",
)
_HEADINGS = ("h2", "h3", "h4", "h5", "h6")
_TEXT = ("p", "blockquote", "dl", "pre")
_LISTS = ("ul", "ol")


def is_wikipedia(tree: html.HtmlElement) -> bool:
    """Whether a page is a MediaWiki article (it has the parser's output block)."""
    return _article(tree) is not None


def wikipedia_text(tree: html.HtmlElement, path: Path) -> ConvertedText:
    """The article text of a saved Wikipedia page, or CorpusFileError saying why it has none."""
    article = _article(tree)
    notes = _take_notes(article)
    for element in article.xpath(" | ".join(f".//*[{_has_class(c)} or @id='{c}']" for c in _NOT_TEXT) + " | .//style | .//script | .//noscript | .//figure | .//annotation"):
        _drop(element)
    infobox = [_infobox_lines(box) for box in article.xpath(f".//*[{_has_class('infobox')} or {_has_class('infobox_v2')} or {_has_class('infobox_v3')}]")]
    for box in article.xpath(f".//*[{_has_class('infobox')} or {_has_class('infobox_v2')} or {_has_class('infobox_v3')}]"):
        _drop(box)
    blocks = [Block(lines) for lines in infobox[:1] if lines] + list(_blocks(article))
    if not any(not b.heading for b in blocks):
        raise CorpusFileError(f"{path}: Wikipedia page without article text")
    return article_text(_title(tree, path), blocks, notes)


def _has_class(name: str) -> str:
    return f"contains(concat(' ', normalize-space(@class), ' '), ' {name} ')"


def _article(tree: html.HtmlElement) -> html.HtmlElement | None:
    """The page's article: the largest MediaWiki output block (the one under #mw-content-text)."""
    candidates = tree.xpath(f"//div[{_has_class('mw-parser-output')}]")
    return max(candidates, key=lambda c: len(c.xpath(".//p")), default=None)


def _title(tree: html.HtmlElement, path: Path) -> str:
    heading = tree.xpath("//*[@id='firstHeading']")
    if heading and one_line(heading[0].text_content()):
        return one_line(heading[0].text_content())
    title = one_line(tree.findtext(".//title") or "")
    return title.rsplit(" — ", 1)[0].rsplit(" - ", 1)[0] or path.stem


def _take_notes(article: html.HtmlElement) -> dict[int, str]:
    """The reference lists' entries by number, each marker replaced by its ``[n]``; the lists
    themselves leave the text. A marker shows its entry's number; an entry no numbered marker
    points to (a note of another group: « [a] », « [N 1] ») is numbered after the others."""
    entries = {item.get("id"): item for item in article.xpath(f".//ol[{_has_class('references')}]/li[@id]")}
    markers = article.xpath(f".//sup[{_has_class('reference')}]")
    numbers: dict[str, int] = {}
    for marker in markers:
        target = (marker.xpath(".//a/@href") or [""])[0].lstrip("#")
        label = one_line(marker.text_content()).strip("[]")
        if target in entries and label.isdigit():
            numbers.setdefault(target, int(label))
    for entry_id in entries:
        numbers.setdefault(entry_id, max(numbers.values(), default=0) + 1)
    for marker in markers:
        target = (marker.xpath(".//a/@href") or [""])[0].lstrip("#")
        _replace_with_text(marker, f"[{numbers[target]}]" if target in numbers else "")
    notes = {}
    for entry_id, entry in entries.items():
        for backlink in entry.xpath(f".//*[{_has_class('mw-cite-backlink')}]"):
            _drop(backlink)
        notes[numbers[entry_id]] = one_line(entry.text_content())
    for reference_list in article.xpath(f".//ol[{_has_class('references')}]"):
        _drop(reference_list)
    return notes


def _infobox_lines(box: html.HtmlElement) -> str:
    """An infobox as lines: its caption and headers, then « label value » for each row."""
    lines = []
    for row in box.xpath(".//caption | .//tr | .//*[" + _has_class("entete") + "]"):
        line = one_line(" ".join(cell.text_content() for cell in row.xpath("./th | ./td")) if row.tag == "tr" else row.text_content())
        if line and line not in lines:
            lines.append(line)
    return "\n".join(lines)


def _blocks(element: html.HtmlElement):
    """Headings, paragraphs and lists under an element, in reading order (wrappers looked into)."""
    for child in element:
        if not isinstance(child.tag, str):
            continue
        if child.tag in _HEADINGS:
            yield Block(child.text_content(), heading=True)
        elif child.tag in _TEXT:
            yield Block(one_line(child.text_content()))
        elif child.tag in _LISTS:
            yield Block("\n".join(one_line(item.text_content()) for item in child.xpath("./li")))
        elif child.tag == "table":
            yield Block("\n".join(" | ".join(one_line(c.text_content()) for c in row.xpath("./th | ./td")) for row in child.xpath(".//tr")))
        else:
            yield from _blocks(child)


def _replace_with_text(element: html.HtmlElement, text: str) -> None:
    """Put ``text`` (then the element's tail) where the element was."""
    parent, previous = element.getparent(), element.getprevious()
    added = text + (element.tail or "")
    if previous is not None:
        previous.tail = (previous.tail or "") + added
    else:
        parent.text = (parent.text or "") + added
    parent.remove(element)


def _drop(element: html.HtmlElement) -> None:
    if element.getparent() is not None:
        _replace_with_text(element, "")
