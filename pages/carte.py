"""Carte: reference layers, initiatives and a choropleth of the selection."""

from __future__ import annotations

import streamlit as st

from territoires.analysis import maps, queries
from territoires.app import ui

ui.ensure_routed(__file__)

st.title("Carte")

with ui.guard():
    data = ui.app_data()
    filters = ui.render_filters_sidebar()
    st.caption(f"Filtres actifs — {ui.filters_summary(filters, data.index)}")
    area = maps.area_from_filters(filters.territories, data.index)
    default_level = "departement" if area.national else (
        "qpv" if all(lvl in ("commune", "qpv") for lvl, _ in filters.territories) else "commune")
    cols = st.columns(3)
    with cols[0]:
        level = ui.param_select("Carte choroplèthe par", "niveau", maps.CHOROPLETH_LEVELS,
                                default_level)
    with cols[1]:
        measure = ui.param_select("Mesure", "mesure", maps.MEASURES, "initiatives")
    with cols[2]:
        colour_by = ui.param_select("Couleur des initiatives", "couleur", maps.COLOUR_BY,
                                    "theme")
    selection = queries.select(data.catalogue, data.index, filters)
    if len(selection.catalogue) == 0:
        ui.empty_selection_info()
    values = queries.aggregate(selection, data.index, level)
    spec = maps.MapSpec(
        area=area, choropleth_level=level, measure=measure, values=values,
        initiatives=ui.initiative_points(data, selection),
        colour_by=colour_by, selected=filters.territories,
    )
    ui.render_map(data, filters, spec)
    st.caption("Cliquez sur un territoire (département, commune, QPV…) pour le sélectionner. "
               "Le tableau ci-dessous reprend les valeurs de la carte.")
    st.markdown(f"## {maps.MEASURES[measure]} par territoire "
                f"({maps.CHOROPLETH_LEVELS[level].lower()})")
    shown = maps.table_rows(values, area, level, measure)
    ui.territory_table(shown, maps.CHOROPLETH_LEVELS[level][:-1] if level != "qpv" else "QPV",
                       measure)
