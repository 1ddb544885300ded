"""Carte: reference layers, initiatives and a choropleth of the selection."""

from __future__ import annotations

import streamlit as st

from territoires.analysis import maps
from territoires.app import ui

ui.ensure_routed(__file__)

st.title("Carte")


@st.fragment
def view(data: ui.AppData, filters: ui.Filters, area: maps.Area) -> None:
    """The map and its table: a change of level, measure or colour reruns only this."""
    ui.leave_first_view()
    with ui.guard():  # a rerun of this part alone runs outside the page's guard
        level, measure, colour_by = ui.carte_choices(filters, area)
        shown = ui.carte_data(data, filters, level)
        if len(shown.selection.catalogue) == 0:
            ui.empty_selection_info()
        ui.carte_map(data, filters, level, measure, colour_by, shown=shown)
        st.caption("Cliquez sur un territoire (département, commune, QPV…) pour le sélectionner. "
                   "Le tableau des valeurs, ci-dessous, reprend les chiffres de la carte.")
        st.markdown(f"## {maps.MEASURES[measure]} par territoire "
                    f"({maps.CHOROPLETH_LEVELS[level].lower()})")
        table = ui.lazy_expander("Tableau des valeurs de la carte", ui.CARTE_TABLE_KEY)
        if table is not None:  # drawn once opened: the map's first view is lighter
            with table:
                rows = maps.table_rows(shown.values, area, level, measure)
                label = maps.CHOROPLETH_LEVELS[level][:-1] if level != "qpv" else "QPV"
                ui.territory_table(rows, label, measure)

with ui.guard():
    data = ui.app_data()
    filters = ui.render_filters_sidebar()
    st.caption(f"Filtres actifs — {ui.filters_summary(filters, data.index)}")
    view(data, filters, maps.area_from_filters(filters.territories, data.index))
