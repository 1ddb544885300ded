"""Mes propositions: the signed-in user's proposals, their status and the moderator's reason."""

from __future__ import annotations

import streamlit as st

from territoires.app import forms, ui
from territoires.catalogue import moderation

ui.ensure_routed(__file__)

st.title("Mes propositions")

with ui.guard():
    user = ui.current_user()
    ui.require_role(user, "contributeur")
    store = ui.contribution_store()
    mine = moderation.my_proposals(store, user)
    if not mine:
        st.info("Vous n'avez encore rien proposé.")
        st.page_link("pages/proposer.py", label="Proposer une initiative",
                     icon=":material/add_circle:")
        st.stop()
    counts = {s: sum(p.status == s for p in mine) for s in moderation.STATUS_LABELS}
    st.text(" · ".join(f"{moderation.STATUS_LABELS[s]} : {n}" for s, n in counts.items()))
    st.dataframe(moderation.proposals_table(mine), hide_index=True, width="stretch",
                 column_config={
                     "Déposée le": st.column_config.DatetimeColumn(format="DD/MM/YYYY HH:mm"),
                     "Décision le": st.column_config.DatetimeColumn(format="DD/MM/YYYY HH:mm"),
                     "Raison / commentaire du modérateur": st.column_config.TextColumn(
                         width="large"),
                 })
    by_id = {p.id: p for p in mine}
    chosen = st.selectbox("Voir le détail d'une proposition", list(by_id), index=None,
                          format_func=lambda i: forms.proposal_label(by_id[i]),
                          placeholder="Choisissez une proposition")
    if chosen is not None:
        p = by_id[chosen]
        st.text(f"Statut : {moderation.STATUS_LABELS[p.status]}"
                + (f"\nRaison du refus : {p.reason}" if p.status == "rejected" else ""))
        current, _version = moderation.published(store, p.initiative_id)
        base = current if p.status == "pending" else None
        forms.show_diff(moderation.diff(base, p.payload,
                                        include_private=user.at_least("moderateur"),
                                        territory_label=ui.app_data().index.label))
        if p.status == "published":
            st.page_link("pages/fiche.py", label="Voir la fiche publiée",
                         icon=":material/description:", query_params={"id": p.initiative_id})
