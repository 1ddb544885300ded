"""Catalogue: the filtered initiatives as a sortable table; a selected row opens its fiche."""

from __future__ import annotations

import streamlit as st

from territoires.analysis import queries, views
from territoires.analysis.formatting import fmt_int
from territoires.app import ui

ui.ensure_routed(__file__)

st.title("Catalogue des initiatives")

#: Rows per page of the table (only the page is sent to the browser).
PAGE_ROWS = 500

with ui.guard():
    data = ui.app_data()
    filters = ui.render_filters_sidebar()
    selection = queries.select(data.catalogue, data.index, filters)
    n = len(selection.catalogue)
    st.markdown(f"**{fmt_int(n)} initiative{'s' if n > 1 else ''}** correspond"
                f"{'ent' if n > 1 else ''} aux filtres.")
    st.caption(f"Filtres actifs — {ui.filters_summary(filters, data.index)}")
    if n == 0:
        ui.empty_selection_info()
    else:
        first = ui.table_page(n, PAGE_ROWS)
        table = views.catalogue_table(selection.catalogue, data.index, ui.page_params(),
                                      limit=PAGE_ROWS, offset=first)
        event = st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            key="catalogue_table",
            on_select="rerun",
            selection_mode="single-row",
            column_order=["fiche", "title", "porteurs", "territoires", "themes", "publics",
                          "maturity", "start_date", "end_date", "funding_eur"],
            column_config={
                "fiche": st.column_config.LinkColumn(
                    "Fiche", display_text="Ouvrir", width="small",
                    help="Lien partageable vers la fiche (garde les filtres)."),
                "title": st.column_config.TextColumn("Initiative", width="large"),
                "porteurs": st.column_config.TextColumn("Porteurs"),
                "territoires": st.column_config.TextColumn("Territoires"),
                "themes": st.column_config.ListColumn("Thèmes"),
                "publics": st.column_config.ListColumn("Publics"),
                "maturity": st.column_config.TextColumn("Maturité"),
                "start_date": st.column_config.DateColumn("Début", format="DD/MM/YYYY"),
                "end_date": st.column_config.DateColumn("Fin", format="DD/MM/YYYY"),
                "funding_eur": st.column_config.NumberColumn(
                    "Financements (€)", format="euro",
                    help="Somme des lignes de financement de l'initiative retenues par les "
                         "filtres."),
            },
        )
        st.caption("Cliquez sur un en-tête pour trier ; cochez une ligne pour ouvrir la "
                   "fiche de l'initiative.")
        rows = event.selection.rows if event is not None else []
        if rows:
            chosen = str(table.iloc[rows[0]]["id"])
            st.switch_page("pages/fiche.py", query_params=ui.page_params(id=chosen))
