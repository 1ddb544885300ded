"""What a browser would draw from an AppTest's elements, and reruns from a browser that has
not drawn every widget yet (Streamlit's widgets load lazily: a user can act before they are
all on screen)."""

from __future__ import annotations

from collections.abc import Iterable

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
