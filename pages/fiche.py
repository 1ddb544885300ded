"""Fiche: one initiative (``?id=``), every public field, its map, funding and related ones."""

from __future__ import annotations

import streamlit as st

from territoires.analysis import views
from territoires.app import forms, report_forms, ui

ui.ensure_routed(__file__)

ui.print_style()

with ui.guard():
    data = ui.app_data()
    ident, record = ui.url_initiative(data)
    # the filters change nothing on a fiche: a line of text, no widgets (issue 13)
    ui.filters_sidebar_note(data)
    # the map first, laid out below the heading: its document loads (in another process)
    # while the rest of the page arrives and is drawn (issue 13: ~0.1 s sooner)
    head = st.container()
    left, right = st.columns(2)
    with right:
        ui.static_map(lambda: views.territories_map(
            data.display("national"), data.display("local"), data.index,
            views.initiative_territories(data.catalogue, ident),
            "Territoires de l'initiative", compact=True, france=data.display("france")),
            key="fiche_map", height=430, title="Carte des territoires de l'initiative",
            data=data, view=(ident,))
    with head:
        st.title(views.md_text(record["title"]))
        forms.fiche_tools(data, ident)
        report_forms.error_report_box(ident)
        if record.get("maturity") == "arretee":
            st.warning("**Initiative arrêtée** : elle n'est plus menée (maturité « Arrêtée »).",
                       icon=":material/block:")
        if not views.is_missing(record.get("summary")):
            st.markdown(views.md_text(record["summary"]))
        for col, facts in zip(st.columns(3), views.fiche_facts_markdown(record, 3),
                              strict=True):
            col.markdown(facts)
    with left:
        st.header("Porteurs")
        ui.text_table(views.organisations_table(data.catalogue, ident, "porteur"),
                      hide_index=True)
        st.header("Partenaires")
        partners = views.organisations_table(data.catalogue, ident, "partenaire")
        if len(partners):
            ui.text_table(partners, hide_index=True)
        else:
            st.caption("Aucun partenaire renseigné.")
        st.header("Territoires")
        ui.text_table(views.territories_table(data.catalogue, data.index, ident),
                      hide_index=True)
    st.markdown(views.fiche_sections_markdown(record))
    st.header("Indicateurs de résultats")
    indicators = views.indicators_table(data.catalogue, ident)
    if len(indicators):
        ui.text_table(indicators.set_index("Indicateur"))
    else:
        st.caption("Aucun indicateur chiffré.")
    st.header("Financements")
    funding = views.funding_table(data.catalogue, ident)
    if len(funding):
        st.markdown(f"Total : **{views.funding_total(funding)}**")
        ui.text_table(funding[["Période", "Financeur", "Type de financeur", "Dispositif",
                               "Montant"]].set_index("Période"))
        chart = ui.lazy_expander("Graphique des financements", "fiche_graphique",
                                 icon=":material/bar_chart:")
        if chart is not None:  # drawn once opened: the fiche's first view is lighter
            chart.altair_chart(views.funding_chart(funding), width="stretch")
    else:
        st.caption("Aucune ligne de financement renseignée.")
    st.markdown(f"## Source\n\n{views.md_text(views.source_text(record))}")
    url = views.source_link(record)
    if url:
        st.link_button("Ouvrir la source", url, icon=":material/open_in_new:")
    contact = views.contact_text(record)
    if contact:
        st.markdown(f"**Contact** : {views.md_text(contact)}")
    st.header("Initiatives proches")
    related = views.related_links(data.catalogue, data.index, ident)
    for rid, title, themes in related:
        st.page_link("pages/fiche.py", label=views.md_text(f"{title} — {themes}"),
                     query_params=ui.page_params(id=rid))
    if not related:
        st.caption("Aucune initiative ne partage ses thèmes.")
    forms.fiche_history(data, ident)
    st.page_link("pages/catalogue.py", label="Retour au catalogue",
                 icon=":material/arrow_back:", query_params=ui.page_params())
