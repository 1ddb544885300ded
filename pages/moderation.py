"""Modération: the queue of proposals, each shown field by field against the published
fiche; publish it, or reject it with a reason its author will read."""

from __future__ import annotations

import streamlit as st

from territoires.app import forms, ui
from territoires.catalogue import moderation

ui.ensure_routed(__file__)

st.title("Modération")

with ui.guard():
    user = ui.current_user()
    ui.require_role(user, "moderateur")
    data = ui.app_data()
    store = ui.contribution_store()
    forms.flash()
    pending = moderation.queue(store, user)
    n = len(pending)
    st.markdown(f"**{n} proposition{'s' if n > 1 else ''} en attente.**")
    if not pending:
        st.info("Aucune proposition à examiner.")
        st.stop()
    st.dataframe(moderation.proposals_table(pending)[["N°", "Fiche", "Type", "Auteur",
                                                      "Déposée le"]],
                 hide_index=True, width="stretch")
    by_id = {p.id: p for p in pending}
    chosen = st.selectbox("Proposition à examiner", list(by_id), key="mod_pick",
                          format_func=lambda i: forms.proposal_label(by_id[i]))
    proposal = by_id[chosen]
    st.header("Changements proposés")
    forms.proposal_view(store, proposal, data.index)
    comment = st.text_input("Commentaire de publication (facultatif)", key="mod_comment",
                            max_chars=2000)
    reason = st.text_area("Raison du refus (obligatoire pour refuser ; l'auteur la lira)",
                          key="mod_reason", max_chars=2000)
    publish_col, reject_col = st.columns(2)
    forms.outcome("mod_")
    done = ("mod_comment", "mod_reason", "mod_pick")
    if publish_col.button("Publier", type="primary", key="mod_publish",
                          icon=":material/publish:"):
        forms.act(lambda: moderation.publish(store, user, proposal.id, comment=comment,
                                             index=data.index),
                  lambda version: f"Proposition n° {proposal.id} publiée (version {version}).",
                  clear=done)
    if reject_col.button("Refuser", key="mod_reject", icon=":material/block:"):
        forms.act(lambda: moderation.reject(store, user, proposal.id, reason),
                  f"Proposition n° {proposal.id} refusée ; l'auteur verra la raison.",
                  clear=done)
