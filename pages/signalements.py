"""Signalements: the error reports readers sent on fiches; a moderator closes each with a
note of what was done."""

from __future__ import annotations

import streamlit as st

from territoires.analysis import views
from territoires.app import forms, ui
from territoires.catalogue import reports

ui.ensure_routed(__file__)

st.title("Signalements d'erreurs")

with ui.guard():
    user = ui.current_user()
    ui.require_role(user, "moderateur")
    data = ui.app_data()
    store = ui.contribution_store()
    forms.flash()
    show_closed = st.toggle("Afficher aussi les signalements clos", key="sg_closed")
    items = reports.list_reports(store, user, status=None if show_closed else "open")
    open_items = [r for r in items if r.status == "open"]
    st.text(f"{len(open_items)} signalement(s) ouvert(s).")
    if not items:
        st.info("Aucun signalement à traiter.")
        st.stop()
    titles = dict(zip(data.catalogue.initiatives["id"], data.catalogue.initiatives["title"],
                      strict=True))
    st.dataframe(views.reports_table(items, titles), hide_index=True, width="stretch",
                 column_config={"Message": st.column_config.TextColumn(width="large")})
    if not open_items:
        st.stop()
    by_id = {r.id: r for r in open_items}
    chosen = st.selectbox("Signalement à clore", list(by_id), key="sg_pick",
                          format_func=lambda i: f"n° {i} — {by_id[i].initiative_id}")
    report = by_id[chosen]
    st.page_link("pages/fiche.py", label="Ouvrir la fiche", icon=":material/description:",
                 query_params={"id": report.initiative_id})
    st.text(report.message)
    note = st.text_area("Note de clôture (ce qui a été fait)", key="sg_note",
                        max_chars=reports.MAX_NOTE)
    if st.button("Clore le signalement", type="primary", key="sg_close"):
        forms.act(lambda: reports.close(store, user, report.id, note),
                  f"Signalement n° {report.id} clos.", clear=["sg_note"])
