"""Accueil: key figures of the current selection and how to use the dashboard."""

from __future__ import annotations

import streamlit as st

from territoires.analysis import queries, views
from territoires.analysis.formatting import fmt_eur, fmt_int
from territoires.app import ui

ui.ensure_routed(__file__)

st.title(ui.APP_TITLE)
st.markdown(
    "Ce tableau de bord rassemble les **initiatives d'alliances éducatives** (écoles, familles, "
    "communes, associations) menées pour les enfants et les jeunes des **quartiers prioritaires "
    "de la politique de la ville (QPV)** et des **cités éducatives**, avec leurs financements."
)

with ui.guard():
    data = ui.app_data()
    filters = ui.render_filters_sidebar()
    st.caption(f"Filtres actifs — {ui.filters_summary(filters, data.index)}")
    selection = queries.select(data.catalogue, data.index, filters)
    figures = queries.key_figures(selection, data.index)
    people, people_help = views.qpv_inhabitants_metric(figures)
    qpv_share = (
        f"{fmt_int(figures.qpv_reached)} / {fmt_int(figures.qpv_in_area)}"
        if figures.qpv_in_area else fmt_int(figures.qpv_reached)
    )
    ui.metrics([
        ("Initiatives", fmt_int(figures.initiatives), "Initiatives correspondant aux filtres."),
        ("Porteurs", fmt_int(figures.porteurs), "Structures porteuses distinctes."),
        ("Financement des initiatives", fmt_eur(figures.funding_initiatives_eur),
         "Somme des lignes de financement rattachées aux initiatives retenues."),
        ("Financement, toutes lignes", fmt_eur(figures.funding_all_eur),
         "Y compris les lignes nationales (adultes-relais, FONJEP…) de la zone."),
        ("Territoires touchés", fmt_int(figures.territories_reached),
         "Territoires (tous niveaux) déclarés par les initiatives retenues."),
        ("QPV touchés / QPV de la zone", qpv_share,
         "QPV touchés par au moins une initiative, sur les QPV de la zone filtrée."),
        ("Habitants des QPV touchés / habitants des QPV de la zone", people, people_help),
    ], per_row=4)
    if figures.initiatives == 0:
        ui.empty_selection_info()

st.markdown(
    "## Comment utiliser le tableau de bord\n"
    "- Choisissez un **territoire** (tapez un nom ou un code : commune, QPV, département…) et "
    "des **thèmes**, publics ou financeurs dans le panneau de gauche : toutes les pages en "
    "tiennent compte.\n"
    "- L'adresse de la page garde les filtres : **copiez-la** pour partager exactement cette "
    "vue.\n"
    "- La **carte** montre les QPV, les contrats de ville, les cités éducatives et les "
    "initiatives ; cliquez sur un territoire pour le sélectionner."
)
