"""A small writer of self-contained HTML pages: headings, text, tables and embedded images.

One file that opens anywhere: the style sheet is inline and every image is embedded as base64
(PNG) or inline markup (SVG), so a report can be mailed or archived as it is. Text is escaped;
nothing is fetched from the network. ``lowrank-theory reproduce`` writes its run's report with
it (:mod:`lowrank_theory.figures.report`) and ``lowrank-theory check --html`` its check table.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from lowrank_theory.simulations.outdir import atomic_write_text

__all__ = ["HtmlPage", "write_records"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72em; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.1em; margin-top: 1.5em; }
pre { background: #f5f5f5; padding: 0.6em; overflow-x: auto; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f0f0f0; }
figure { margin: 1em 0 2em 0; } figure img, figure svg { max-width: 100%; height: auto; }
figcaption { font-size: 0.95em; margin-top: 0.4em; }
.claim { color: #444; font-style: italic; }
"""


def _cell(value: Any) -> str:
    if isinstance(value, Mapping | list | tuple):
        value = json.dumps(value, default=str)
    elif isinstance(value, float):
        value = f"{value:.4g}"
    return html.escape(str(value))


@dataclass
class HtmlPage:
    """A page built block by block, then :meth:`render`-ed or :meth:`write`-n.

    Examples
    --------
    >>> page = HtmlPage("Run of 3 seeds")
    >>> page.heading("Tables").table([{"experiment": "phase", "rows": 96}]).paragraph("a < b")
    HtmlPage(title='Run of 3 seeds', blocks=3)
    >>> text = page.render()
    >>> "<td>phase</td>" in text and "a &lt; b" in text and "<title>Run of 3 seeds" in text
    True
    """

    title: str
    parts: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"HtmlPage(title={self.title!r}, blocks={len(self.parts)})"

    def heading(self, text: str, level: int = 2) -> HtmlPage:
        """Add a heading (``level`` 2 or 3; the title is the page's one level-1 heading)."""
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def paragraph(self, text: str, css: str | None = None) -> HtmlPage:
        """Add a paragraph of plain text."""
        attr = f' class="{css}"' if css else ""
        self.parts.append(f"<p{attr}>{html.escape(text)}</p>")
        return self

    def code(self, text: str) -> HtmlPage:
        """Add preformatted text (a command line)."""
        self.parts.append(f"<pre>{html.escape(text)}</pre>")
        return self

    def table(self, rows: Sequence[Mapping[str, Any]] | pd.DataFrame,
              columns: Sequence[str] | None = None) -> HtmlPage:
        """Add a table: records (dicts) or a DataFrame; nested values are shown as JSON."""
        records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
        if columns is None:
            columns = list(dict.fromkeys(k for r in records for k in r))
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c, ''))}</td>" for c in columns)
                       + "</tr>" for r in records)
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return self

    def image(self, path: str | os.PathLike, caption: str = "", claim: str = "") -> HtmlPage:
        """Embed the PNG or SVG at ``path`` with its caption and the claim it supports."""
        path = Path(path)
        data = path.read_bytes()
        alt = html.escape(caption or path.stem)
        if path.suffix == ".svg":
            # Inline SVG: drop the XML prologue, which is not allowed inside HTML.
            text = data.decode("utf-8")
            img = text[text.index("<svg"):]
        else:
            img = (f'<img alt="{alt}" src="data:image/png;base64,'
                   f'{base64.b64encode(data).decode("ascii")}">')
        caption_html = f"<strong>{html.escape(path.name)}</strong>. {html.escape(caption)}"
        if claim:
            caption_html += f'<br><span class="claim">Claim: {html.escape(claim)}</span>'
        self.parts.append(f"<figure>{img}<figcaption>{caption_html}</figcaption></figure>")
        return self

    def render(self) -> str:
        """The whole page as one HTML document."""
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
                f"<body><h1>{html.escape(self.title)}</h1>\n" + "\n".join(self.parts)
                + "\n</body></html>\n")

    def write(self, path: str | os.PathLike) -> Path:
        """Write the page to ``path`` atomically (the folder must exist); return the path."""
        path = Path(path)
        atomic_write_text(path, self.render())
        return path


def write_records(path: str | os.PathLike, title: str, records: Iterable[Mapping[str, Any]],
                  *, command: str | None = None, columns: Sequence[str] | None = None,
                  notes: Sequence[str] = ()) -> Path:
    """Write a page with the command that made it, ``notes`` and a table of ``records``.

    Used by ``lowrank-theory check --html FILE`` for its check table.
    """
    page = HtmlPage(title)
    if command:
        page.heading("Command").code(command)
    for note in notes:
        page.paragraph(note)
    page.table(list(records), columns)
    return page.write(path)
