"""Read rendered HTML the way a test needs it: tables as text cells, every URL, visible text.

    page = parse(html)
    page.tables[0].column("Rank")       # ["ref", "1", ...]
    page.urls                           # every href/src/action value, in order
    page.rows_with_class("ref")

Standard library only (html.parser); good enough for our own well-formed templates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Row:
    cells: list[str] = field(default_factory=list)
    attrs: dict[str, str] = field(default_factory=dict)
    header: bool = False


@dataclass
class Table:
    attrs: dict[str, str]
    rows: list[Row] = field(default_factory=list)

    @property
    def headers(self) -> list[str]:
        return next((r.cells for r in self.rows if r.header), [])

    @property
    def body(self) -> list[Row]:
        return [r for r in self.rows if not r.header]

    def column(self, name: str) -> list[str]:
        i = [h.lower() for h in self.headers].index(name.lower())
        return [r.cells[i] for r in self.body]


@dataclass
class Page:
    tables: list[Table] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    text: str = ""
    tags: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def rows_with_class(self, cls: str) -> list[Row]:
        return [r for t in self.tables for r in t.body if cls in r.attrs.get("class", "").split()]


# Tags that start a new line on screen: their text never runs into the text before them.
_BLOCKS = frozenset({"div", "p", "li", "br", "ul", "ol", "dt", "dd", "section", "h1", "h2", "pre"})


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.stack: list[Table] = []
        self.cell: list[str] | None = None
        self.in_head = False
        self.skip = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {k: v or "" for k, v in attrs_list}
        self.page.tags.append((tag, attrs))
        if tag in _BLOCKS:
            self.handle_data(" ")
        for k in ("href", "src", "action"):
            if k in attrs:
                self.page.urls.append(attrs[k])
        if tag in ("script", "style", "title"):
            self.skip += 1
        elif tag == "table":
            self.stack.append(Table(attrs))
        elif tag == "thead":
            self.in_head = True
        elif tag == "tbody":
            self.in_head = False
        elif tag == "tr" and self.stack:
            self.stack[-1].rows.append(Row(attrs=attrs, header=self.in_head))
        elif tag in ("td", "th") and self.stack:
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "title"):
            self.skip -= 1
        elif tag in ("td", "th") and self.stack and self.cell is not None:
            self.stack[-1].rows[-1].cells.append(" ".join("".join(self.cell).split()))
            self.cell = None
        elif tag == "table" and self.stack:
            self.page.tables.append(self.stack.pop())

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        if self.cell is not None:
            self.cell.append(data)
        self.text.append(data)


def parse(html: str) -> Page:
    p = _Parser()
    p.feed(html)
    p.close()
    p.page.text = " ".join("".join(p.text).split())
    return p.page


def external(urls: list[str]) -> list[str]:
    """URLs that would leave the host: absolute http(s) or protocol-relative ones."""
    return [u for u in urls if u.startswith(("http:", "https:", "//"))]
