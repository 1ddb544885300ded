"""Exporter: the current selection as CSV (zip), XLSX, GeoJSON, GeoPackage or map HTML."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from territoires.analysis import queries, views
from territoires.analysis.formatting import fmt_int
from territoires.app import ui

ui.ensure_routed(__file__)

st.title("Exporter")

#: Above this many initiatives the file is generated when the button is clicked.
EAGER_LIMIT = 200

with ui.guard():
    data = ui.app_data()
    filters = ui.render_filters_sidebar()
    summary = ui.filters_summary(filters, data.index)
    st.caption(f"Filtres actifs — {summary}")
    selection = queries.select(data.catalogue, data.index, filters)
    n = len(selection.catalogue)
    if n == 0:
        ui.empty_selection_info()
    else:
        st.markdown(f"**{fmt_int(n)} initiative(s)** et leurs structures, territoires, "
                    "indicateurs et financements. Les adresses électroniques de contact ne "
                    "sont jamais exportées.")
        fmt = ui.param_select("Format", "format", {k: v[0] for k, v in
                                                   views.EXPORT_FORMATS.items()}, "xlsx",
                              horizontal=False)
        national = st.checkbox(
            "Inclure les lignes de financement nationales (adultes-relais, FONJEP…) de la zone",
            key="export_national", disabled=fmt == "html",
            help="Lignes non rattachées à une initiative, retenues par les filtres.")
        name = views.export_name(fmt, views.filters_short_text(filters, data.index),
                                 dt.date.today(), national)

        def make() -> bytes:
            return views.export_file(
                selection, fmt, layers=data.layers, index=data.index,
                include_national=national, national=data.display("national"),
                local=data.display("local"), points=data.points())

        payload = make() if n <= EAGER_LIMIT else make
        st.download_button(f"Télécharger ({views.EXPORT_FORMATS[fmt][1].upper()})", payload,
                           file_name=name, mime=views.EXPORT_FORMATS[fmt][2],
                           key=f"download_{fmt}", icon=":material/download:", type="primary",
                           on_click="ignore")
        st.caption(f"Fichier : {name}"
                   + (f" ({views.fmt_size(len(payload))})" if isinstance(payload, bytes)
                      else " (généré au clic)"))
        st.markdown(
            "- **CSV** : un fichier par table (initiatives, structures, territoires, "
            "indicateurs, financements), encodage UTF-8 avec BOM et séparateur « ; » pour "
            "Excel.\n- **XLSX** : les mêmes tables, une feuille chacune, et une feuille "
            "« lisez-moi ».\n- **GeoJSON / GeoPackage** : une entité par initiative et "
            "territoire, en WGS 84.\n- **Carte HTML** : la carte de la sélection, à ouvrir "
            "dans un navigateur.")
