"""Comparer: 2 to 4 territories side by side (``?cmp=``), then 2 or 3 initiatives (``?ini=``)."""

from __future__ import annotations

import streamlit as st

from territoires.analysis import queries, views
from territoires.app import ui

ui.ensure_routed(__file__)

st.title("Comparer")

with ui.guard():
    data = ui.app_data()
    filters = ui.render_filters_sidebar()
    st.caption(f"Filtres actifs (hors territoires) — {ui.filters_summary(filters, data.index)}")
    st.header("Territoires côte à côte")
    chosen = ui.url_territories_picker(
        "Territoires à comparer (2 à 4, tout niveau)", "cmp",
        help_text="Les autres filtres du panneau de gauche s'appliquent à chaque territoire.")
    others = filters.replace(territories=())
    lists: list = []
    if len(chosen) < 2:
        st.info("Choisissez au moins deux territoires (commune, QPV, EPCI, département…) pour "
                "les comparer.")
    else:
        names = views.territory_names(data.index, chosen)
        selections = queries.select_each(data.catalogue, data.index, others, chosen)
        figures = queries.compare_selections(selections, data.index)
        st.dataframe(views.comparison_table(figures, names), width="stretch")
        st.caption("Financements : lignes localisées dans le territoire (lignes plus larges "
                   "réparties selon la population). QPV touchés : QPV du territoire que "
                   "touche au moins une initiative retenue. Population des QPV : population "
                   "municipale connue (entre parenthèses, pour combien de QPV quand elle "
                   "manque pour certains) ; financement par habitant des QPV = financements "
                   "du territoire / population de ses QPV.")
        for title, chart in views.distribution_charts(selections, names):
            st.markdown(title)
            st.altair_chart(chart)
        st.markdown("**Initiatives de chaque territoire**")
        lists = views.initiatives_by_territory(selections)
        tabs = st.tabs([f"{views.md_text(name)} — {len(items)}"
                        for name, items in zip(names, lists, strict=True)])
        for tab, (level, code), items in zip(tabs, chosen, lists, strict=True):
            with tab:
                if not items:
                    st.caption("Aucune initiative retenue par les filtres.")
                for iid, title in items[:views.MAX_LINKS]:
                    st.page_link("pages/fiche.py", label=views.md_text(title),
                                 query_params=ui.page_params(id=iid))
                if len(items) > views.MAX_LINKS:
                    st.page_link("pages/catalogue.py", icon=":material/table:",
                                 label=f"Les {len(items)} initiatives dans le catalogue",
                                 query_params=ui.page_params(
                                     t=views.format_territories([(level, code)])))

    st.header("Initiatives champ par champ")
    selection = queries.select(data.catalogue, data.index, filters)
    options, too_many = views.initiative_choices(
        selection.catalogue, data.catalogue, views.parse_ids(st.query_params.get("ini")), lists)
    if too_many:
        st.caption("Sélection trop large pour tout proposer : la liste reprend les initiatives "
                   "des territoires comparés. Affinez les filtres pour en voir d'autres.")
    ids = ui.url_ids_picker("Initiatives à comparer (2 ou 3)", "ini", options)
    if len(ids) < 2:
        st.info("Choisissez deux ou trois initiatives pour les comparer champ par champ.")
    else:
        # a static table: long texts wrap instead of being cut
        ui.text_table(queries.compare_initiatives(data.catalogue, ids))
