"""Couverture: QPV (or communes with QPV) no selected initiative reaches, and overlaps."""

from __future__ import annotations

import streamlit as st

from territoires.analysis import queries, views
from territoires.analysis.formatting import fmt_int
from territoires.app import ui

ui.ensure_routed(__file__)

st.title("Couverture")

POPULATION = st.column_config.NumberColumn("Population", format="localized")
PEOPLE = st.column_config.NumberColumn("Habitants des QPV", format="localized")
TITLES = st.column_config.ListColumn("Initiatives (titres)")
THEME_COLUMNS = ({c: st.column_config.NumberColumn(c, format="localized")
                  for c in ("Habitants touchés", "Habitants non touchés")}
                 | {"Part touchée (%)": st.column_config.NumberColumn(format="%.1f %%")})
#: The page's parts, one tab each (``?vue=``): only the one shown is computed and drawn
SECTIONS = {"non-touches": "Territoires non touchés", "themes": "Par thème et par public",
            "chevauchements": "Chevauchements"}

with ui.guard():
    data = ui.app_data()
    filters = ui.render_filters_sidebar()
    st.caption(f"Filtres actifs — {ui.filters_summary(filters, data.index)}")
    st.markdown(
        "Un territoire est **touché** quand le territoire déclaré d'au moins une initiative "
        "retenue le contient ou le recoupe (une initiative déclarée sur Cenon touche les QPV "
        "de Cenon ; une initiative déclarée sur un QPV touche ce QPV et ses communes). Les "
        "territoires sont classés par nombre d'habitants des QPV laissés de côté ; ceux dont "
        "la population est inconnue viennent après."
    )
    level = ui.param_select("Territoires non touchés", "unite", views.COVERAGE_LEVELS, "qpv")
    selection = queries.select(data.catalogue, data.index, filters)
    if len(selection.catalogue) == 0:
        ui.empty_selection_info()
    part, tab = ui.param_tabs("vue", SECTIONS, "non-touches")  # only the open one is drawn
    label = views.COVERAGE_LEVELS[level]
    with tab:
        if part == "non-touches":
            uncovered = queries.coverage(selection, data.index, level)
            st.header(f"{label} que ne touche aucune initiative : {fmt_int(len(uncovered))}")
            # the first of the ranking named at once: the table is drawn when opened
            st.markdown(views.coverage_summary_text(
                queries.coverage_summary(selection, data.index, level)) + " "
                + views.coverage_leaders_text(uncovered, level))
            if uncovered.empty:
                st.success("Toute la zone filtrée est touchée par au moins une initiative.")
            else:
                shown = uncovered.head(views.MAX_HIGHLIGHTS)
                ui.static_map(lambda: views.territories_map(
                    data.display("national"), data.display("local"), data.index,
                    [(level, c) for c in shown["code"]], "Non touchés",
                    area_territories=list(filters.territories),
                    france=data.display("france")),
                    key="couverture_map", height=480, data=data, document=False,
                    view=(ui.filters_key(filters), level))
                if len(uncovered) > len(shown):
                    st.caption(f"La carte montre les {fmt_int(len(shown))} premiers du "
                               "classement ; le tableau les liste tous.")
                # drawn once opened (a table on the first view held the map back ~0.3 s)
                table = ui.lazy_expander(f"Tableau du classement complet "
                                         f"({fmt_int(len(uncovered))})", ui.COUVERTURE_TABLE_KEY)
                if table is not None:
                    table.dataframe(views.coverage_table(uncovered, level), hide_index=True,
                                    width="stretch", column_config={"Population": POPULATION,
                                                                    "Habitants des QPV": PEOPLE})
        elif part == "themes":
            st.header("Couverture par thème et par public, pondérée par la population")
            by = ui.param_select("Répartir par", "par", views.THEME_COVERAGE_BY, "themes")
            themes = queries.theme_coverage(selection, data.index, by)
            st.caption("Part des habitants des QPV de la zone touchés par au moins une "
                       "initiative retenue de chaque thème (ou public) ; les QPV de population "
                       "inconnue sont laissés de côté.")
            tab_chart, tab_table = st.tabs(["Graphique", "Tableau"])
            tab_chart.altair_chart(views.theme_coverage_chart(themes,
                                                              views.THEME_COVERAGE_BY[by]))
            tab_table.dataframe(views.theme_coverage_table(themes), hide_index=True,
                                width="stretch", column_config=THEME_COLUMNS)
        else:
            st.header("Chevauchements : territoires touchés par plusieurs initiatives")
            overlap = queries.overlaps(selection, data.index, level)
            if overlap.empty:
                st.info("Aucun territoire de la zone n'est touché par deux initiatives ou plus.")
            else:
                titles = views.initiative_options(selection.catalogue)
                st.dataframe(views.overlaps_table(overlap, titles), hide_index=True,
                             width="stretch", column_config={"Population": POPULATION,
                                                             "Titres": TITLES})
