"""Small tables of catalogue text as static HTML, every value escaped.

A Fiche's tables (porteurs, partenaires, territoires, indicateurs, financements) and the
Comparer's field-by-field table are a few rows of text: a static ``<table>`` that long texts
wrap in, that screen readers read out and that prints. ``st.table`` drew them before, as
lazily loaded elements: Streamlit's frontend loads their code on a page's first view and
React draws them with the page's other late elements, in the same render as the sidebar's
widgets, which delayed the Fiche's map (issue 13: the Fiche's map drawn 1.43x the bare
page's time, 1.26x with these tables in ``st.html`` and no filter widgets, medians of 7 in
one run). ``st.table`` also rendered each cell as Markdown, so each text had to be escaped
for Markdown; here every value is escaped for HTML (:func:`html.escape`) and the page shows
the string with ``st.html``, which sanitises it again (DOMPurify) and never reads Markdown.

No streamlit import here: a pure function of a DataFrame.
"""

from __future__ import annotations

import html
import math

import pandas as pd

from territoires.analysis.formatting import MISSING

#: CSS class of the tables (styled by :data:`TABLE_CSS`)
TABLE_CLASS = "territoires-table"

#: Look of the tables, close to ``st.table``'s: thin rules, header cells in bold, text in
#: the page's own colour (contrast as the page's text), wrapping long words
TABLE_CSS = (
    f"<style>.{TABLE_CLASS}{{border-collapse:collapse;width:100%;font-size:0.875rem;"
    "margin-bottom:1rem}"
    f".{TABLE_CLASS} th,.{TABLE_CLASS} td{{border-bottom:1px solid rgba(49,51,63,0.2);"
    "padding:0.25rem 0.5rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}"
    f".{TABLE_CLASS} th{{font-weight:600}}"
    f".{TABLE_CLASS} caption{{text-align:left;font-size:0.875rem;padding-bottom:0.25rem}}"
    "</style>"
)


def cell_html(value: object) -> str:
    """One value as escaped HTML: missing -> "—", line breaks kept as ``<br>``."""
    if value is None or value is pd.NA or value is pd.NaT or (
            isinstance(value, float) and math.isnan(value)):
        return MISSING
    text = str(value).replace("\r\n", "\n").replace("\r", "\n")
    return "<br>".join(html.escape(line, quote=True) for line in text.split("\n"))


def html_table(table: pd.DataFrame, *, hide_index: bool = False,
               caption: str | None = None) -> str:
    """``table`` as an HTML ``<table>`` (with :data:`TABLE_CSS`): column headers
    (``scope="col"``), then, unless ``hide_index``, the index as each row's header cell
    (``scope="row"``, headed by the index's name). Every header, value and the ``caption``
    are escaped: catalogue text shows as typed, never as markup."""
    index_head = [] if hide_index else [table.index.name]
    head = "".join(f'<th scope="col">{_header(name)}</th>'
                   for name in [*index_head, *table.columns])
    rows = []
    for label, values in zip(table.index, table.itertuples(index=False, name=None),
                             strict=True):
        first = "" if hide_index else f'<th scope="row">{cell_html(label)}</th>'
        cells = "".join(f"<td>{cell_html(v)}</td>" for v in values)
        rows.append(f"<tr>{first}{cells}</tr>")
    title = f"<caption>{cell_html(caption)}</caption>" if caption else ""
    return (f'{TABLE_CSS}<table class="{TABLE_CLASS}">{title}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _header(name: object) -> str:
    return "" if name is None else cell_html(name)
