"""What a browser would draw from an AppTest's elements, and reruns from a browser that has
not drawn every widget yet (Streamlit's widgets load lazily: a user can act before they are
all on screen)."""

from __future__ import annotations

from collections.abc import Iterable
from html.parser import HTMLParser

import pandas as pd
from streamlit.proto.WidgetStates_pb2 import WidgetStates
from streamlit.testing.v1 import AppTest


def drawn(node) -> object:
    """What a browser shows when it draws this widget's element for the first time: the value
    the server pushed (``set_value``, sent in one run only), else the element's default (as
    Streamlit's frontend does)."""
    p = node.proto
    if node.type == "multiselect":
        return list(p.raw_values) if p.set_value else [p.options[i] for i in p.default]
    if node.type in ("selectbox", "radio"):
        return p.raw_value if p.set_value else (
            p.options[p.default] if p.HasField("default") else None)
    if node.type == "date_input":
        return list(p.value) if p.set_value else list(p.default)
    return p.value if p.set_value else p.default


def drawn_widgets(at: AppTest) -> dict[str, object]:
    """Label -> what a browser drawing it now would show, for the usual input widgets."""
    nodes = [*at.text_input, *at.text_area, *at.multiselect, *at.selectbox, *at.radio,
             *at.date_input]
    return {f"{n.type}:{n.label}": drawn(n) for n in nodes}


def rerun_with_only(at: AppTest, nodes: Iterable = ()) -> AppTest:
    """Rerun as a browser that has drawn only ``nodes`` does: its rerun carries their state
    and no other (AppTest's own runner; its public ``run`` sends every widget's state)."""
    states = WidgetStates()
    for node in nodes:
        states.widgets.append(node._widget_state)
    at = at._run(states)
    assert not at.exception, [e.value for e in at.exception]
    return at


class _TableParser(HTMLParser):
    """Header cells, row header cells and data cells of one ``html_tables`` table."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.head: list[str] = []
        self.rows: list[list[tuple[str, str]]] = []  # (tag, text) per cell
        self._cell: list[str] | None = None
        self._tag = ""
        self._in_head = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "thead":
            self._in_head = True
        elif tag == "tr" and not self._in_head:
            self.rows.append([])
        elif tag in ("th", "td"):
            self._cell, self._tag = [], tag
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "thead":
            self._in_head = False
        elif tag in ("th", "td") and self._cell is not None:
            text = "".join(self._cell)
            if self._in_head:
                self.head.append(text)
            else:
                self.rows[-1].append((self._tag, text))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_frame(body: str) -> pd.DataFrame:
    """The DataFrame an ``html_tables.html_table`` string shows (texts as a reader sees
    them; the row header cells, if any, as the index named by the first header)."""
    parser = _TableParser()
    parser.feed(body)
    has_index = bool(parser.rows) and parser.rows[0][0][0] == "th"
    columns = parser.head[1:] if has_index else parser.head
    data = [[text for _tag, text in (row[1:] if has_index else row)]
            for row in parser.rows]
    frame = pd.DataFrame(data, columns=columns)
    if has_index:
        frame.index = pd.Index([row[0][1] for row in parser.rows], name=parser.head[0] or None)
    return frame


def text_tables(at: AppTest) -> list[pd.DataFrame]:
    """The static tables of a page (``ui.text_table``: ``st.html`` of an HTML table), read
    back as DataFrames."""
    from territoires.analysis.html_tables import TABLE_CLASS

    return [table_frame(h.proto.body) for h in at.get("html")
            if f'class="{TABLE_CLASS}"' in h.proto.body]


def run_first_view(at: AppTest) -> AppTest:
    """Run ``at`` as a browser's first view does: a map page's first run sends its map
    before its widgets (``ui.first_view_step``) and the map's frame, once it has drawn the
    map, asks for the run that draws them; AppTest has no frame, so that run is made here."""
    from territoires.app import ui

    at.run()
    state = at.session_state.get(ui._FIRST_VIEW)
    if not at.exception and state in ("deferred", "awaiting"):
        # in the browser every run goes through the router (app.py); AppTest reruns the
        # page's file unless it is sent through the router again
        at.session_state[ui._ROUTED] = False
        at.run()
    return at
